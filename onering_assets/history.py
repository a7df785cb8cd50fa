"""What the Dagster instance remembers of each asset: its latest materializations and checks.

Read from the event log alone (no store is queried), so `onering assets` stays cheap: a
partitioned asset costs two queries (the latest materialization of each partition, then
those events), every other asset one batched query, and the checks one batched query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


@dataclass(frozen=True)
class Materialized:
    """An asset as its latest materializations left it.

    ``rows`` sums each partition's count from that partition's latest materialization
    (``None`` when one of them recorded no count); ``materialized`` and ``partitions`` are
    ``None`` for an asset without partitions.
    """

    when: float | None = None
    run_id: str | None = None
    rows: int | None = None
    materialized: int | None = None
    partitions: int | None = None
    missing: tuple[str, ...] = ()

    @property
    def coverage(self) -> str | None:
        """Materialized partitions of all, e.g. ``12/12``; ``None`` without partitions."""
        return None if self.partitions is None else f"{self.materialized}/{self.partitions}"


@dataclass(frozen=True)
class Evaluation:
    """A check's latest completed evaluation."""

    passed: bool
    summary: str
    when: float
    run_id: str


def _value(metadata: Mapping[str, Any], name: str) -> Any:
    value = metadata.get(name)
    return getattr(value, "value", value)


def _rows(metadata: Mapping[str, Any], partition: str | None) -> int | None:
    """Rows one materialization recorded for ``partition`` (or for the whole asset).

    A ranged run records the same metadata against every month it wrote: its
    ``rows_by_partition`` holds each month's count, ``rows`` the run's total.
    """
    if partition is not None:
        by_partition = _value(metadata, "rows_by_partition")
        if isinstance(by_partition, Mapping) and partition in by_partition:
            return int(by_partition[partition])
        count = _value(metadata, "dagster/row_count")
        return int(count) if isinstance(count, int) else None
    for name in ("dagster/row_count", "rows"):
        count = _value(metadata, name)
        if isinstance(count, int):
            return count
    return None


def _partitioned(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Sequence[str]
) -> Materialized:
    latest = instance.get_latest_storage_id_by_partition(
        key, DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions)
    )
    missing = tuple(p for p in partitions if p not in latest)
    if not latest:
        return Materialized(materialized=0, partitions=len(partitions), missing=missing)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, storage_ids=list(latest.values())),
        limit=len(latest),
    ).records
    counts = [
        _rows(r.asset_materialization.metadata if r.asset_materialization else {}, r.partition_key)
        for r in records
    ]
    newest = max(records, key=lambda r: r.storage_id)
    return Materialized(
        when=newest.timestamp,
        run_id=newest.run_id,
        rows=None if None in counts else sum(c for c in counts if c is not None),
        materialized=len(latest),
        partitions=len(partitions),
        missing=missing,
    )


def materializations(
    instance: dg.DagsterInstance, graph: Any, keys: Iterable[dg.AssetKey]
) -> dict[dg.AssetKey, Materialized]:
    """The latest materialization state of each asset of ``graph`` (a resolved asset graph)."""
    result: dict[dg.AssetKey, Materialized] = {}
    whole = []
    for key in keys:
        parts = graph.get(key).partitions_def
        if parts is None:
            whole.append(key)
        else:
            result[key] = _partitioned(instance, key, list(parts.get_partition_keys()))
    latest = instance.get_latest_materialization_events(whole) if whole else {}
    for key in whole:
        event = latest.get(key)  # an asset never materialized has no entry
        mat = event.asset_materialization if event is not None else None
        if event is None or mat is None:
            result[key] = Materialized()
        else:
            result[key] = Materialized(event.timestamp, event.run_id, _rows(mat.metadata, None))
    return result


def _evaluation(record: AssetCheckExecutionRecord | None) -> Evaluation | None:
    event = record.event if record is not None else None
    if record is None or event is None or event.dagster_event is None:
        return None
    data = event.dagster_event.asset_check_evaluation_data
    summary = _value(data.metadata, "summary")
    return Evaluation(
        passed=data.passed,
        summary=str(summary if summary is not None else data.description or ""),
        when=event.timestamp,
        run_id=record.run_id,
    )


def latest_completed(
    instance: dg.DagsterInstance,
    check_keys: Sequence[dg.AssetCheckKey],
    runs: set[str] | None = None,
) -> dict[dg.AssetCheckKey, AssetCheckExecutionRecord]:
    """Each check's latest completed execution, by one of ``runs`` when given.

    A check never evaluated (by them) is left out. A check planned by a run still going
    (or one that stopped before it) gives its execution before that.
    """
    storage = instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(list(check_keys))
    result = {}
    for key in check_keys:
        record = latest.get(key)
        if record is not None and (record.status not in _DONE or not _by(record, runs)):
            older = storage.get_asset_check_execution_history(key, limit=100, status=_DONE)
            record = next((r for r in older if _by(r, runs)), None)
        if record is not None:
            result[key] = record
    return result


def _by(record: AssetCheckExecutionRecord, runs: set[str] | None) -> bool:
    return runs is None or record.run_id in runs


def evaluations(
    instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey]
) -> dict[dg.AssetCheckKey, Evaluation]:
    """Each check's latest completed evaluation (``latest_completed``), summarized."""
    result = {}
    for key, record in latest_completed(instance, check_keys).items():
        evaluation = _evaluation(record)
        if evaluation is not None:
            result[key] = evaluation
    return result
