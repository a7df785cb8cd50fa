"""What one run left in the Dagster event log, reduced to the numbers the metrics export.

Nothing in the run path records metrics: every number here is read back from events the
run already wrote (materializations and their metadata, check evaluations, step stats).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

AIRFLOW_TAGS = ("airflow/dag_id", "airflow/task_id")
_EVENTS = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION}


@dataclass(frozen=True)
class Written:
    """One materialization: rows written (``None``: not recorded) and rows rejected."""

    asset: str
    layer: str
    rows: int | None
    rejected: int
    when: float
    lock_waits: dict[str, float] = field(default_factory=dict)  # seconds, by lock kind
    splits_rejects: bool = False  # the asset keeps rejects (its build's reject ratio counts)


@dataclass(frozen=True)
class Checked:
    """One completed check evaluation."""

    asset: str
    check: str
    passed: bool
    blocking: bool
    when: float


@dataclass(frozen=True)
class Step:
    step: str
    status: str
    seconds: float


@dataclass(frozen=True)
class RunFacts:
    """One run: its status, Airflow task (if the bridge launched it) and what it did."""

    run_id: str
    status: str
    seconds: float | None
    airflow: tuple[str, str] | None
    written: list[Written] = field(default_factory=list)
    checked: list[Checked] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in {"success", "failure", "canceled"}


def _value(metadata: Mapping[str, Any], name: str) -> Any:
    value = metadata.get(name)
    return getattr(value, "value", value)


def rows_of(metadata: Mapping[str, Any], partition: str | None) -> int | None:
    """Rows one materialization wrote for its partition (or for the whole asset).

    A ranged run records one materialization per month with the same metadata:
    ``rows_by_partition`` holds each month's count and ``rows`` the run's total.
    """
    by_partition = _value(metadata, "rows_by_partition")
    if partition is not None and isinstance(by_partition, Mapping):
        count = by_partition.get(partition)
        return int(count) if count is not None else None
    for name in ("dagster/row_count", "rows"):
        count = _value(metadata, name)
        if isinstance(count, int):
            return count
    return None


def _once_per_run(metadata: Mapping[str, Any], partition: str | None) -> bool:
    """Whether this materialization carries the run's whole-build numbers.

    A ranged run records one materialization per month with the same metadata: numbers of the
    whole build (rejects, lock waits) count on its first month only.
    """
    by_partition = _value(metadata, "rows_by_partition")
    first = min(by_partition) if isinstance(by_partition, Mapping) and by_partition else None
    return partition is None or first is None or partition == first


def rejected_of(metadata: Mapping[str, Any], partition: str | None) -> int:
    """Rows the build rejected (Silver's ``rejects_by_reason``), counted once per run."""
    reasons = _value(metadata, "rejects_by_reason")
    if not isinstance(reasons, Mapping) or not _once_per_run(metadata, partition):
        return 0
    return sum(int(n) for n in reasons.values())


def lock_waits_of(metadata: Mapping[str, Any], partition: str | None) -> dict[str, float]:
    """Seconds the step waited for locks, by kind (``lock_wait_seconds``), once per run."""
    waits = _value(metadata, "lock_wait_seconds")
    if not isinstance(waits, Mapping) or not _once_per_run(metadata, partition):
        return {}
    return {str(kind): float(seconds) for kind, seconds in waits.items()}


def _written(entry: Any) -> Written:
    mat: dg.AssetMaterialization = entry.asset_materialization
    path = mat.asset_key.path
    return Written(
        asset="/".join(path),
        layer=path[0],
        rows=rows_of(mat.metadata, mat.partition),
        rejected=rejected_of(mat.metadata, mat.partition),
        when=entry.timestamp,
        lock_waits=lock_waits_of(mat.metadata, mat.partition),
        splits_rejects=isinstance(_value(mat.metadata, "rejects_by_reason"), Mapping),
    )


def _checked(entry: Any) -> Checked:
    data: dg.AssetCheckEvaluation = entry.dagster_event.event_specific_data
    return Checked(
        asset="/".join(data.asset_key.path),
        check=data.check_name,
        passed=bool(data.passed),
        blocking=bool(data.blocking),
        when=entry.timestamp,
    )


def run_facts(instance: dg.DagsterInstance, record: Any) -> RunFacts:
    """Read one run's record, events and step stats."""
    run = record.dagster_run
    tags = run.tags
    seconds = record.end_time - record.start_time if record.start_time and record.end_time else None
    airflow = tuple(tags[t] for t in AIRFLOW_TAGS) if all(t in tags for t in AIRFLOW_TAGS) else None
    facts = RunFacts(
        run_id=run.run_id,
        status=run.status.value.lower(),
        seconds=seconds,
        airflow=(airflow[0], airflow[1]) if airflow else None,
    )
    for entry in instance.all_logs(run.run_id, of_type=_EVENTS):
        event_type = entry.dagster_event.event_type if entry.dagster_event else None
        if event_type == DagsterEventType.ASSET_MATERIALIZATION:
            facts.written.append(_written(entry))
        elif event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            facts.checked.append(_checked(entry))
    for stat in instance.get_run_step_stats(run.run_id):
        if stat.start_time and stat.end_time and stat.status:
            facts.steps.append(
                Step(stat.step_key, stat.status.value.lower(), stat.end_time - stat.start_time)
            )
    return facts
