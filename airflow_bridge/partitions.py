"""Airflow run -> Dagster partition range (pure): monthly ``%Y-%m`` and daily ``%Y-%m-%d``.

A partition spec in the manifest is ``{"start": KEY, "end": KEY, "fmt": FMT}`` with the
first and last keys of a Dagster time-window partitions definition. :func:`cron_window`
bounds a partitioned cron schedule to exactly those partitions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_bridge.errors import BridgeError
from airflow_bridge.formats import DAILY, MONTHLY, PARTITION_FORMATS

# Airflow's cron presets (``airflow.utils.dates.cron_presets``); croniter lacks @quarterly.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


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


def _declared(key: str, fmt: str, first: datetime, last: datetime) -> bool:
    """Whether ``key`` is exactly one of the keys from ``first`` to ``last``.

    No list is made: ten years of days are 3,652 keys, 7.8 ms a call when listed.
    """
    try:
        at = datetime.strptime(key, fmt).replace(tzinfo=UTC)
    except ValueError:
        return False
    return at.strftime(fmt) == key and first <= at <= last


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
    fmt, start, end = _fmt(spec), spec["start"], spec["end"]
    if conf.get("partition"):
        first = last = str(conf["partition"])
    elif conf.get("from") or conf.get("to"):
        first, last = str(conf.get("from") or start), str(conf.get("to") or end)
    elif partition_key:
        first = last = _parse(partition_key, fmt).strftime(fmt)
    elif when is not None:
        first = last = when.strftime(fmt)
    else:
        first, last = start, end
    bounds = (_parse(start, fmt), _parse(end, fmt))
    for key in (first, last):
        if not _declared(key, fmt, *bounds):
            raise PartitionRangeError(f"partition {key!r} is outside {start}..{end}.")
    if first > last:
        raise BridgeError(f"partition range {first}..{last} is reversed.")
    return first, last


def cron_window(dag_id: str, cron: str, spec: dict[str, str]) -> dict[str, str]:
    """The first and last run of a partitioned cron DAG: one per declared partition.

    Airflow's ``CronPartitionTimetable(run_offset=-1)`` (UTC) keys the run at each cron
    tick by the tick before it: the partition that just closed. So the first run is the
    tick after the first tick at or after the first partition's start, and the last is the
    first tick at or after the end of the last partition. As the DAG's ``start_date`` and
    ``end_date`` they bound the timetable: it never queues a run for a partition the assets
    do not have, whatever the clock says (catching up or not). Exported into the plan, so
    DAG parsing computes nothing.
    """
    from croniter import croniter

    fmt = _fmt(spec)
    expression = CRON_PRESETS.get(cron, cron)

    def first_tick_from(at: datetime) -> datetime:
        naive = at.replace(tzinfo=None) - timedelta(seconds=1)
        try:
            tick = croniter(expression, naive).get_next(datetime)
        except (ValueError, KeyError) as err:
            raise BridgeError(f"{dag_id}: schedule {cron!r} is not a cron expression.") from err
        return tick.replace(tzinfo=UTC)

    opens = first_tick_from(_parse(spec["start"], fmt))
    first = first_tick_from(opens + timedelta(seconds=1))
    last = first_tick_from(next_start(_parse(spec["end"], fmt), fmt))
    if first > last:
        raise BridgeError(
            f"{dag_id}: schedule {cron!r} closes none of the partitions "
            f"{spec['start']}..{spec['end']}; give it a more frequent cron."
        )
    return {"first_run": first.isoformat(), "last_run": last.isoformat()}
