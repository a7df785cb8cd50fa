"""Run records for the lineage document: what a run did, read from the Dagster instance.

A record carries the pipeline that ran it — the Airflow DAG when the run was triggered by
the bridge (its tags name the DAG, run and task), else the Dagster code location — with
the run's status and times, its steps, the partitions and row counts it materialized, and
every check result. Machine paths in materialization metadata (``uri``) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from onering_assets.lineage.document import DAGSTER_PIPELINE

AIRFLOW_TAGS = ("dag_id", "run_id", "task_id", "try_number")


def iso(timestamp: float | None) -> str | None:
    """``2026-12-01T03:04:05.123+00:00`` (UTC, milliseconds), or ``None``."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _value(value: Any) -> Any:
    return getattr(value, "value", value)


def _checks(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    """Each check evaluation of the run (a check evaluated per month appears per month)."""
    checks = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        event: Any = entry.get_dagster_event().event_specific_data
        meta = event.metadata
        checks.append(
            {
                "asset": event.asset_key.to_user_string(),
                "name": event.check_name,
                "passed": bool(event.passed),
                "severity": event.severity.value,
                "summary": str(_value(meta.get("summary", "")) or event.description or ""),
                "failing": _value(meta["failing"]) if "failing" in meta else None,
                "partition": getattr(event, "partition", None),
                "at": iso(entry.timestamp),
            }
        )
    return sorted(checks, key=lambda c: (c["asset"], c["name"], c["partition"] or "", c["at"]))


def _materializations(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    """Per asset: the partitions materialized and the rows they hold."""
    by_asset: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        data: Any = entry.get_dagster_event().event_specific_data
        mat = data.materialization
        item = by_asset.setdefault(
            mat.asset_key.to_user_string(),
            {"asset": mat.asset_key.to_user_string(), "partitions": [], "rows": 0},
        )
        if mat.partition:
            item["partitions"].append(mat.partition)
        rows = _value(mat.metadata.get("dagster/row_count", mat.metadata.get("rows")))
        item["rows"] = None if rows is None or item["rows"] is None else item["rows"] + int(rows)
    for item in by_asset.values():
        item["partitions"].sort()
    return [by_asset[k] for k in sorted(by_asset)]


def _steps(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "name": stat.step_key,
                "status": stat.status.value if stat.status else "UNKNOWN",
                "start": iso(stat.start_time),
                "end": iso(stat.end_time),
            }
            for stat in instance.get_run_step_stats(run_id)
        ),
        key=lambda s: (s["start"] or "", s["name"]),
    )


def _airflow(tags: Mapping[str, str]) -> dict[str, str] | None:
    if "airflow/dag_id" not in tags:
        return None
    return {name: tags.get(f"airflow/{name}", "") for name in AIRFLOW_TAGS}


def record(instance: dg.DagsterInstance, run_record: Any) -> dict[str, Any]:
    """One run as the lineage document lists it."""
    run = run_record.dagster_run
    airflow = _airflow(run.tags)
    steps = _steps(instance, run.run_id)
    start, end = iso(run_record.start_time), iso(run_record.end_time)
    if airflow:
        pipeline = f"onering_airflow.{airflow['dag_id']}"
        execution = airflow["run_id"]
        tasks = [
            {"name": airflow["task_id"], "status": run.status.value, "start": start, "end": end}
        ]
    else:
        pipeline, execution, tasks = DAGSTER_PIPELINE, run.run_id, steps
    tags = run.tags
    return {
        "run_id": run.run_id,
        "pipeline": pipeline,
        "execution_id": execution,
        "status": run.status.value,
        "start": start,
        "end": end,
        "airflow": airflow,
        "partitions": [
            tags[t]
            for t in ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
            if t in tags
        ]
        or ([tags["dagster/partition"]] if "dagster/partition" in tags else []),
        "tasks": tasks,
        "steps": steps,
        "materializations": _materializations(instance, run.run_id),
        "checks": _checks(instance, run.run_id),
    }


def run_records(
    instance: dg.DagsterInstance, run_ids: Iterable[str] | None = None, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Records of the given runs (all finished and running runs when ``None``), oldest first."""
    filters = dg.RunsFilter(run_ids=list(run_ids)) if run_ids is not None else None
    records = instance.get_run_records(filters=filters, limit=limit)
    return sorted(
        (record(instance, r) for r in records), key=lambda r: (r["start"] or "", r["run_id"])
    )
