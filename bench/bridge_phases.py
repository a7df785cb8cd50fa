"""Airflow bridge bench, the phases worker: where the parse time goes, in process and
without a ``DagBag`` (bridge import, manifest load, plan and its topological sort,
operators, wiring through ``set_upstream`` vs the relation sets, ``hash(dag)``)."""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.bridge_manifests import MANIFEST_FILE
from bench.harness import timed, timing_wrapper


def direct_set_upstream(task: Any, upstream: Any) -> None:
    """What ``_set_relatives`` ends with, minus its same-DAG check (true by construction),
    which hashes the DAG (all task ids and schedule Assets) twice per edge."""
    task.upstream_task_ids.add(upstream.node_id)
    upstream.downstream_task_ids.add(task.node_id)


def plan_phases(manifest_path: Path, t: dict[str, float]) -> Any:
    """Load the manifest and plan its DAGs, as export does; the plans and the config."""
    import airflow_bridge.graph as graph
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.manifest import load

    with timed(t, "load manifest (at export)"):
        manifest = load(manifest_path)
        config = RenderConfig(**manifest.render).validate()
    sort = graph._kahn
    setattr(graph, "_kahn", timing_wrapper(sort, t, "  of it graph._kahn"))  # noqa: B010
    try:
        with timed(t, "plan_dags (at export)"):
            plans = graph.plan_dags(manifest, config)
    finally:
        setattr(graph, "_kahn", sort)  # noqa: B010
    return plans, config


def floor_dag(dag_id: str, keys: list[str]) -> Any:
    from datetime import UTC, datetime

    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    dag = DAG(dag_id=dag_id, schedule=None, start_date=datetime(2013, 1, 1, tzinfo=UTC))
    for key in keys:
        EmptyOperator(task_id=key.replace("/", "__"), dag=dag)
    return dag


def wire(dag: Any, plan: Any, direct: bool = False) -> None:
    """Wire the plan's edges: Airflow's set_upstream, or the relation sets directly."""
    tasks = dag.task_dict
    for task in plan.tasks:
        for upstream in task.upstream:
            if direct:
                direct_set_upstream(tasks[task.task_id], tasks[upstream])
            else:
                tasks[task.task_id].set_upstream(tasks[upstream])


def hash_seconds(dag: Any) -> float:
    """One ``hash(dag)``: task ids + schedule (each schedule Asset hashes via attrs + JSON)."""
    probes = max(1, min(100, 100_000 // max(1, len(dag.task_dict))))
    started = time.perf_counter()
    for _ in range(probes):
        hash(dag)
    return (time.perf_counter() - started) / probes


def warm_up(build_dag: Callable[..., Any], plan: Any, config: Any) -> None:
    """Pay first-use costs (lazy imports, caches) once for both sides, untimed by the phases."""
    one = replace(plan, dag_id="warm_up", tasks=(replace(plan.tasks[0], upstream=()),))
    build_dag(asdict(one), asdict(config))
    floor_dag("warm_up_floor", ["warm/up"])


def worker_phases(args: argparse.Namespace) -> dict[str, Any]:
    """In-process breakdown for one exported folder, ours vs the floor (no DagBag)."""
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401  (as in the parse worker)

    gc.freeze()
    t: dict[str, float] = {}
    with timed(t, "import airflow_bridge.dag (after airflow)"):
        from airflow_bridge.dag import build_dag
    plans, config = plan_phases(args.folder / MANIFEST_FILE, t)
    bare = [replace(p, tasks=tuple(replace(x, upstream=()) for x in p.tasks)) for p in plans]
    with timed(t, "first-use init (a 1-task DAG each side)"):
        warm_up(build_dag, plans[0], config)
    with timed(t, "DAG + DagsterAssetsOperators"):
        dags = [build_dag(asdict(p), asdict(config)) for p in bare]
    with timed(t, "floor: DAG + EmptyOperators"):
        floors = [floor_dag(p.dag_id, [k for x in p.tasks for k in x.asset_keys]) for p in plans]
    hashes = [hash_seconds(d) for d in dags]
    edges = [sum(len(x.upstream) for x in p.tasks) for p in plans]
    # set_upstream -> _set_relatives hashes the DAG twice per edge: {task.dag for ...}
    predicted = sum(2 * e * h for e, h in zip(edges, hashes, strict=True))
    t["wiring via set_upstream: predicted 2 x edges x hash(dag)"] = predicted
    if predicted <= args.wire_budget:
        with timed(t, "wiring via set_upstream: measured"):
            for dag, plan in zip(dags, plans, strict=True):
                wire(dag, plan)
    with timed(t, "wiring via the relation sets directly"):
        for dag, plan in zip(floors, plans, strict=True):
            wire(dag, plan, direct=True)
    return {
        "dags": len(plans),
        "tasks": sum(len(p.tasks) for p in plans),
        "edges": sum(edges),
        "schedule_assets": max(len(p.schedule_assets) for p in plans),
        "hash_dag_s": statistics.median(hashes),
        "seconds": t,
    }
