"""The partitions every monthly asset shares: 2013-01 … 2013-12, keyed ``YYYY-MM``."""

from __future__ import annotations

import re
from datetime import date

import dagster as dg

from onering_assets.errors import ConfigError

MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2013-01", end_date="2014-01", fmt="%Y-%m")
MONTH_KEY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def month_key(key: str) -> str:
    """Validate a partition key so it can be used as a SQL literal in ``ALTER … PARTITION``."""
    if not MONTH_KEY.match(key) or key not in MONTHLY.get_partition_keys():
        first, *_, last = MONTHLY.get_partition_keys()
        raise ConfigError(f"{key!r} is not a partition; partitions run from {first} to {last}.")
    return key


def month_bounds(keys: list[str]) -> tuple[date, date]:
    """First day of the first month and first day after the last month."""
    first = date.fromisoformat(f"{min(keys)}-01")
    year, month = (int(part) for part in max(keys).split("-"))
    return first, date(year + month // 12, month % 12 + 1, 1)


def selected_partitions(context: dg.AssetExecutionContext) -> list[str] | None:
    """The run's partition keys (a key or a range), or None when run without partitions."""
    if not context.has_partition_key and not context.has_partition_key_range:
        return None
    return [month_key(k) for k in context.partition_keys]
