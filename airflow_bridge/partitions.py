"""Airflow run -> Dagster partition range (pure; monthly ``YYYY-MM`` keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_bridge.errors import BridgeError


def _months(spec: dict[str, str]) -> list[str]:
    first_y, first_m = (int(x) for x in spec["start"].split("-"))
    last_y, last_m = (int(x) for x in spec["end"].split("-"))
    out, y, m = [], first_y, first_m
    while (y, m) <= (last_y, last_m):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def partition_range(
    spec: dict[str, str] | None, conf: dict[str, Any], logical_date: datetime | None
) -> tuple[str, str] | None:
    """The months a run covers; ``None`` for unpartitioned assets.

    ``conf`` (``partition``, or ``from``/``to``) wins, then the logical date's month, then
    every partition.
    """
    if spec is None:
        return None
    months = _months(spec)
    if conf.get("partition"):
        first = last = str(conf["partition"])
    elif conf.get("from") or conf.get("to"):
        first, last = str(conf.get("from") or months[0]), str(conf.get("to") or months[-1])
    elif logical_date is not None:
        first = last = logical_date.strftime("%Y-%m")
    else:
        first, last = months[0], months[-1]
    for key in (first, last):
        if key not in months:
            raise BridgeError(f"partition {key!r} is outside {months[0]}..{months[-1]}.")
    if first > last:
        raise BridgeError(f"partition range {first}..{last} is reversed.")
    return first, last
