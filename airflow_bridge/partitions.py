"""Airflow run -> Dagster partition range (pure): monthly ``%Y-%m`` and daily ``%Y-%m-%d``.

A partition spec in the manifest is ``{"start": KEY, "end": KEY, "fmt": FMT}`` with the
first and last keys of a Dagster time-window partitions definition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_bridge.errors import BridgeError
from airflow_bridge.formats import DAILY, MONTHLY, PARTITION_FORMATS


class PartitionRangeError(BridgeError):
    """A run asks for a partition the assets do not have."""


def _fmt(spec: dict[str, str]) -> str:
    fmt = spec.get("fmt", MONTHLY)
    if fmt not in PARTITION_FORMATS:
        raise BridgeError(f"partition format {fmt!r}: the bridge maps {MONTHLY} and {DAILY}.")
    return fmt


def _parse(key: str, fmt: str) -> datetime:
    try:
        return datetime.strptime(key, fmt).replace(tzinfo=UTC)
    except ValueError as err:
        raise BridgeError(f"partition {key!r} is not a {fmt} key.") from err


def next_start(start: datetime, fmt: str) -> datetime:
    """The start of the partition after the one starting at ``start``."""
    if fmt == DAILY:
        return start + timedelta(days=1)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def keys(spec: dict[str, str]) -> list[str]:
    """Every partition key from ``start`` to ``end``, in order."""
    fmt = _fmt(spec)
    at, last = _parse(spec["start"], fmt), _parse(spec["end"], fmt)
    out = []
    while at <= last:
        out.append(at.strftime(fmt))
        at = next_start(at, fmt)
    return out


def partition_range(
    spec: dict[str, str] | None,
    conf: dict[str, Any],
    when: datetime | None,
    partition_key: str | None = None,
) -> tuple[str, str] | None:
    """The partitions a run covers; ``None`` for unpartitioned assets.

    In order: ``dag_run.conf`` (``partition``, or ``from``/``to``); the run's Airflow
    ``partition_key`` (a partitioned Airflow DAG run); the partition holding ``when`` (the
    data-interval start or logical date); else every partition.
    """
    if spec is None:
        return None
    fmt, every = _fmt(spec), keys(spec)
    if conf.get("partition"):
        first = last = str(conf["partition"])
    elif conf.get("from") or conf.get("to"):
        first, last = str(conf.get("from") or every[0]), str(conf.get("to") or every[-1])
    elif partition_key:
        first = last = _parse(partition_key, fmt).strftime(fmt)
    elif when is not None:
        first = last = when.strftime(fmt)
    else:
        first, last = every[0], every[-1]
    known = set(every)
    for key in (first, last):
        if key not in known:
            raise PartitionRangeError(f"partition {key!r} is outside {every[0]}..{every[-1]}.")
    if first > last:
        raise BridgeError(f"partition range {first}..{last} is reversed.")
    return first, last
