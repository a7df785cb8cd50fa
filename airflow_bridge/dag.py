"""Build an Airflow DAG from its exported plan at parse time: JSON in, DAG out.

This is the DAG-parse path, so it stays small: it reads the plan JSON as plain dicts
(validated at export time by ``graph.plan_dags``) and imports only ``airflow.sdk``, the two
operators and two tiny modules; no Dagster, no YAML, no dataclass-heavy modules.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, BaseOperator

from airflow_bridge.errors import BridgeError
from airflow_bridge.formats import DAILY, MANIFEST_FILE, MONTHLY, PLAN_VERSION
from airflow_bridge.lineage_task import PublishLineageOperator, catalog_python
from airflow_bridge.operator import DagsterAssetsOperator

START = datetime(2013, 1, 1, tzinfo=UTC)
MONTHLY_CRONS = {"@monthly", "0 0 1 * *"}


def _mapper(upstream_fmt: str, fmt: str) -> Any:
    """How an upstream DAG's partition key becomes this DAG's (daily rolls up to monthly)."""
    from airflow.sdk import IdentityMapper, StartOfMonthMapper

    if upstream_fmt == fmt:
        return IdentityMapper()
    if (upstream_fmt, fmt) == (DAILY, MONTHLY):
        return StartOfMonthMapper(input_format=DAILY, output_format=MONTHLY)
    raise BridgeError(f"no partition mapping from {upstream_fmt} keys to {fmt} keys.")


def schedule_of(plan: dict[str, Any]) -> Any:
    """Airflow's schedule for a plan.

    A partitioned DAG gets partitioned runs: on a cron, a ``CronPartitionTimetable`` keyed
    like the Dagster partitions, each run building the partition that just closed; on
    assets, a ``PartitionedAssetTimetable`` whose runs carry the upstream run's key
    (Airflow only queues partition-aware DAGs for keyed asset events, and vice versa).
    """
    schedule, spec = plan["schedule"], plan["partitions"]
    fmt = spec.get("fmt", MONTHLY) if spec else None
    if schedule == "assets":
        assets = [Asset(uri) for uri in plan["schedule_assets"]]
        keyed = {f for f in plan["schedule_fmts"] if f}
        if not keyed:
            return assets
        if None in plan["schedule_fmts"] or len(keyed) > 1:
            raise BridgeError(
                f"{plan['dag_id']}: upstream DAGs mix partitioned and unpartitioned (or "
                "differently partitioned) runs; give it a cron schedule or regroup."
            )
        from airflow.sdk import AssetAll, PartitionedAssetTimetable

        (upstream,) = keyed
        return PartitionedAssetTimetable(
            assets=AssetAll(*assets), default_partition_mapper=_mapper(upstream, fmt or upstream)
        )
    if schedule is None or fmt is None:
        return schedule
    if fmt == DAILY and schedule in MONTHLY_CRONS:
        raise BridgeError(f"{plan['dag_id']}: a monthly schedule for daily partitions skips days.")
    from airflow.sdk import CronPartitionTimetable

    return CronPartitionTimetable(schedule, timezone="UTC", run_offset=-1, key_format=fmt)


def build_dag(
    plan: dict[str, Any], render: dict[str, Any], manifest_path: str | None = None
) -> DAG:
    """The DAG of one exported plan, with the render settings it was exported with.

    A partitioned cron DAG starts with the run of its first partition and ends with the
    run of its last (the plan's ``schedule_window``): Airflow never schedules a partition
    the assets do not have. ``catchup=False`` inside that window: a DAG unpaused late runs
    the partition that closed last, not every one before it (``onering airflow up`` keeps
    a DAG with a run due paused locally). Airflow also drops the tasks of a run whose
    explicit logical date is outside the window: such DAGs are triggered by partition key
    or conf, with no logical date.

    With ``publish_lineage`` on, a ``publish_lineage`` teardown runs after every task and
    carries the run's status to the catalog without changing it (``lineage_task.py``).
    """
    spec, window = plan["partitions"], plan["schedule_window"]
    start = datetime.strptime(spec["start"], spec["fmt"]).replace(tzinfo=UTC) if spec else START
    end = None
    if window:
        start = datetime.fromisoformat(window["first_run"])
        end = datetime.fromisoformat(window["last_run"])
    dag = DAG(
        dag_id=plan["dag_id"],
        description=plan["description"],
        schedule=schedule_of(plan),
        start_date=start,
        end_date=end,
        catchup=False,
        max_active_runs=1,
        tags=["onering", f"env:{render['env']}"] if render.get("env") else ["onering"],
        default_args={
            "owner": render["owner"],
            "retries": render["retries"],
            "retry_delay": timedelta(seconds=render["retry_delay_s"]),
        },
    )
    tasks = {}
    for task in plan["tasks"]:
        tasks[task["task_id"]] = DagsterAssetsOperator(
            task_id=task["task_id"],
            dag=dag,
            asset_keys=task["asset_keys"],
            partitions=task["partitions"],
            mode=render["mode"],
            python=render["python"],
            dagster_url=render["dagster_url"],
            dagster_token_env=render["dagster_token_env"],
            run_checks=bool(task["checks"]),
            checks_only=task["checks_only"],
            manifest_path=manifest_path,
            env=render.get("env"),  # absent from plans exported before environments
            outlets=[Asset(uri) for uri in task["outlets"]],
        )
    for task in plan["tasks"]:
        for upstream in task["upstream"]:
            _wire(tasks[task["task_id"]], tasks[upstream])
    if render["publish_lineage"]:
        _add_publish_lineage(dag, plan["tasks"], tasks)
    return dag


def _add_publish_lineage(
    dag: DAG, planned: list[dict[str, Any]], tasks: dict[str, DagsterAssetsOperator]
) -> None:
    """The ``publish_lineage`` teardown, downstream of every task (all done, any state)."""
    upstreams = {u for task in planned for u in task["upstream"]}
    publish = PublishLineageOperator(
        dag=dag,
        dag_tasks=list(tasks),
        leaf_tasks=[t for t in tasks if t not in upstreams],
        python=catalog_python(),
    )
    for task in tasks.values():
        _wire(publish, task)


def _wire(downstream: BaseOperator, upstream: BaseOperator) -> None:
    """``upstream >> downstream`` without Airflow's per-edge cost.

    Airflow 3.3's ``set_upstream`` checks both tasks share a DAG by hashing the DAG (every
    task id) twice per edge: O(n²), 8-10 s for 10,000 tasks. Both tasks are ours and in one
    DAG by construction, so this fills the relation sets directly. It is internal API:
    tests/airflow_bridge/test_export.py checks the edges survive DAG serialization.
    """
    downstream.upstream_task_ids.add(upstream.task_id)
    upstream.downstream_task_ids.add(downstream.task_id)


def load_dag(plan_path: Path) -> DAG:
    """The DAG planned at export time in ``plan_path`` (only this DAG's part of the graph)."""
    if not plan_path.exists():
        raise BridgeError(f"{plan_path} is missing; run `onering airflow export`.")
    raw = json.loads(plan_path.read_text())
    if raw.get("version") != PLAN_VERSION:
        raise BridgeError(
            f"{plan_path}: plan version {raw.get('version')!r}, this bridge reads "
            f"{PLAN_VERSION}; run `onering airflow export`."
        )
    try:
        return build_dag(raw["plan"], raw["render"], str(plan_path.with_name(MANIFEST_FILE)))
    except (KeyError, TypeError) as err:
        raise BridgeError(
            f"{plan_path}: not a OneRing DAG plan ({err!r}); run `onering airflow export`."
        ) from err
