"""Scale simulation, a backfill of years of daily partitions, planned and never run.

Dagster's side (:func:`dagster_backfill`): OneRing's medallion graph (``scale_sim_defs``)
loaded into a real Dagster workspace in this process, then the two steps Dagster's
backfill daemon takes before it launches anything: ``AssetBackfillData.from_asset_partitions``
(the target: every asset-partition of the range) and one ``execute_asset_backfill_iteration_inner``
(Dagster 1.13's "no side effects" core of a daemon tick: which runs to request now), with
the backfill's serialized size, under each backfill policy.

The bridge's and Airflow's side (:func:`airflow_backfill`): the same graph exported with
the bridge's planner (``airflow_bridge.graph.plan_dags``, Bronze ``@daily``), its
``cron_window``, Airflow 3.3's own ``CronPartitionTimetable`` walking every run of that
window, and the range resolution each task does (``airflow_bridge.partitions``): how many
DAG runs and task instances the range means, one task per asset or one per group.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from bench.harness import ROOT
from bench.scale_sim_defs import SPEC, daily_spec, medallion_manifest, partitions_def

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _clock() -> float:
    return time.perf_counter()


def median_of(n: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The median wall time of ``n`` calls of ``work``, and the last call's result."""
    times, result = [], None
    for _ in range(n):
        began = _clock()
        result = work()
        times.append(_clock() - began)
    return statistics.median(times), result


def requested_partitions(run_requests: list[Any], keys: list[str]) -> int:
    """Asset-partitions the run requests cover (an unpartitioned asset counts once)."""
    index = {k: i for i, k in enumerate(keys)}
    total = 0
    for request in run_requests:
        assets = len(request.asset_selection or [])
        tags = request.tags or {}
        if RANGE_START in tags:
            total += assets * (index[tags[RANGE_END]] - index[tags[RANGE_START]] + 1)
        else:
            total += assets
    return total


def dagster_backfill(copies: int, days: int, policy: str) -> dict[str, Any]:
    """Plan a backfill of every medallion asset over ``days`` days; run nothing."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._core.definitions.temporal_context import TemporalContext
    from dagster._core.execution.asset_backfill import (
        AssetBackfillData,
        execute_asset_backfill_iteration_inner,
    )
    from dagster._core.instance_for_test import instance_for_test
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._time import get_current_datetime

    SPEC.update(copies=copies, days=days, policy=policy)
    origin = LoadableTargetOrigin(
        module_name="bench.scale_sim_defs", attribute="defs", working_directory=str(ROOT)
    )
    out: dict[str, Any] = {"copies": copies, "days": days, "policy": policy}
    with instance_for_test() as instance:
        began = _clock()
        with in_process_test_workspace(instance, origin) as workspace:
            graph = workspace.asset_graph
            out["load_s"] = _clock() - began
            assets = sorted(graph.materializable_asset_keys)
            parts = next(graph.get(k).partitions_def for k in assets if graph.get(k).is_partitioned)
            assert parts is not None
            began = _clock()
            keys = list(parts.get_partition_keys())
            out["partition_keys_s"] = _clock() - began
            began = _clock()
            data = AssetBackfillData.from_asset_partitions(
                asset_graph=graph,
                partition_names=keys,
                asset_selection=assets,
                dynamic_partitions_store=instance,
                backfill_start_timestamp=time.time(),
                all_partitions=False,
            )
            out["target_s"] = _clock() - began
            target = data.target_subset
            began = _clock()
            serialized = data.serialize(instance, graph)
            out["serialize_s"] = _clock() - began
            view = AssetGraphView(
                temporal_context=TemporalContext(
                    effective_dt=get_current_datetime(), last_event_id=None
                ),
                instance=instance,
                asset_graph=graph,
            )
            quiet = logging.getLogger("bench.scale_sim.backfill")
            quiet.setLevel(logging.WARNING)
            began = _clock()
            result = execute_asset_backfill_iteration_inner(
                "scale-sim", data, view, time.time(), quiet, None
            )
            out["first_tick_s"] = _clock() - began
            runs = list(result.run_requests)
    partitioned = target.partitions_subsets_by_asset_key
    out |= {
        "assets": len(assets),
        "partitioned_assets": len(partitioned),
        "partitions": len(keys),
        "target_asset_partitions": sum(len(s) for s in partitioned.values()),
        "target_unpartitioned": len(target.non_partitioned_asset_keys),
        "serialized_bytes": len(serialized),
        "first_tick_runs": len(runs),
        "first_tick_asset_partitions": requested_partitions(runs, keys),
        "largest_run_assets": max((len(r.asset_selection or []) for r in runs), default=0),
    }
    return out


def snapshot_daily(copies: int, days: int) -> dict[str, Any]:
    """The bridge's export snapshot (``airflow_bridge.export.snapshot``) of the daily graph."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.export import snapshot
    from bench.scale_sim_defs import definitions

    manifest = medallion_manifest(copies, days)
    config = RenderConfig(**manifest.render).validate()
    began = _clock()
    defs = definitions(manifest)
    defs.resolve_asset_graph()
    built = _clock() - began
    began = _clock()
    snap = snapshot(defs, config)
    snapped = _clock() - began
    # What the snapshot asks each partitioned asset (every key, for the first and last)
    # against asking for the two ends alone.
    parts = partitions_def(daily_spec(days))
    assert parts is not None
    every, _ = median_of(3, parts.get_partition_keys)
    ends, _ = median_of(
        3, lambda: (parts.get_first_partition_key(), parts.get_last_partition_key())
    )
    return {
        "assets": len(snap.assets),
        "partitioned_assets": sum(1 for a in snap.assets if a.partitions),
        "days": days,
        "definitions_s": built,
        "snapshot_s": snapped,
        "get_partition_keys_s": every,
        "first_and_last_key_s": ends,
    }


@contextlib.contextmanager
def quiet_structlog() -> Iterator[None]:
    """Airflow's timetable logs two info lines per run; drop them while timing it."""
    import structlog

    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**before)


def airflow_runs(spec: dict[str, str], window: dict[str, str]) -> list[str]:
    """The partition key of every run Airflow's own timetable makes in the DAG's window."""
    import pendulum
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronPartitionTimetable

    timetable = CronPartitionTimetable(  # pyright: ignore[reportAbstractUsage]
        "@daily", timezone="UTC", run_offset=-1, key_format=spec["fmt"]
    )
    first, last = (
        pendulum.instance(datetime.fromisoformat(window[k])) for k in ("first_run", "last_run")
    )
    restriction = TimeRestriction(first, last, catchup=True)
    keys, info = [], None
    with quiet_structlog():
        while info := timetable.next_dagrun_info_v2(last_dagrun_info=info, restriction=restriction):
            keys.append(info.partition_key)
    return keys


def airflow_backfill(days: int, calls: int = 200) -> dict[str, Any]:
    """DAG runs and task instances of ``days`` daily partitions through the bridge."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.graph import plan_dags
    from airflow_bridge.partitions import cron_window, keys, partition_range

    manifest = medallion_manifest(1, days)
    config = RenderConfig(**manifest.render).validate()
    began = _clock()
    plans = plan_dags(manifest, config)
    out: dict[str, Any] = {"days": days, "plan_s": _clock() - began}
    teardown = 1 if config.publish_lineage else 0
    per_run = {p.dag_id: len(p.tasks) + teardown for p in plans}
    grouped = plan_dags(manifest, replace(config, tasks="group"))
    per_run_grouped = {p.dag_id: len(p.tasks) + teardown for p in grouped}
    bronze = next(p for p in plans if p.schedule == "@daily")
    spec = bronze.partitions or {}
    began = _clock()
    window = cron_window(bronze.dag_id, "@daily", spec)
    out["cron_window_s"] = _clock() - began
    import airflow.timetables.trigger  # noqa: F401  (imports are not timed)
    import pendulum  # noqa: F401

    out["airflow_timetable_s"], runs = median_of(3, lambda: airflow_runs(spec, window))
    out["bridge_keys_s"], declared = median_of(3, lambda: keys(spec))
    conf = {"from": spec["start"], "to": spec["end"]}
    out["range_conf_s"], whole = median_of(3, lambda: partition_range(spec, conf, None))
    began = _clock()
    for key in declared[:: max(1, len(declared) // calls)][:calls]:
        partition_range(spec, {}, None, partition_key=key)
    per_task = (_clock() - began) / min(calls, len(declared))
    task_instances = sum(per_run.values()) * len(runs)
    return out | {
        "airflow_runs": len(runs),
        "runs_match_partitions": runs == declared,
        "dags": len(plans),
        "tasks_per_run": per_run,
        "task_instances": task_instances,
        "tasks_per_run_grouped": per_run_grouped,
        "task_instances_grouped": sum(per_run_grouped.values()) * len(runs),
        "range_one_run": list(whole) if whole else None,
        "partition_range_per_task_s": per_task,
    }
