"""Declared physical ranges of Silver measure columns, validated and turned into SQL.

A Silver ``.yml`` may declare ``ranges: {column: [min, max]}`` (inclusive; null values pass).
A row with a value outside its range is rejected with ``out of range: <column>``: the
whole row, not just the value, because one impossible reading means the observation
cannot be trusted, and the landed row stays whole in the rejects table.

The rule is generated here, never hand-written in the declared SQL, so that the same
declaration drives staging (rows rejected), the ``value_ranges`` check (published rows
audited) and any independent recomputation that reads the YAML.
"""

from __future__ import annotations

import math
import re
from typing import Any

from onering_assets.errors import ConfigError

REASON_PREFIX = "out of range: "
# ClickHouse numeric types, possibly wrapped in Nullable(...)/LowCardinality(...).
NUMERIC_TYPE = re.compile(
    r"^(U?Int(8|16|32|64|128|256)|Float(32|64)|Decimal(32|64|128|256)?\(.*\))$"
)
WRAPPER = re.compile(r"^(Nullable|LowCardinality)\((.*)\)$")

Ranges = dict[str, tuple[float, float]]


def is_numeric(type_name: str) -> bool:
    """Whether a declared ClickHouse type holds numbers (nullable or not)."""
    inner = type_name.strip()
    while match := WRAPPER.match(inner):
        inner = match.group(2).strip()
    return bool(NUMERIC_TYPE.match(inner))


def _bound(value: Any, where: str) -> float:
    # bool is an int in Python, and yes/no in YAML: refuse it rather than read 1 or 0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {value!r} is not a number.")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number.")
    return float(value)


def parse_ranges(raw: Any, column_types: dict[str, str], *, where: str) -> Ranges:
    """Validate a ``ranges`` mapping against the table's declared columns.

    Args:
        raw: the YAML value of ``ranges`` (``None`` when absent).
        column_types: declared column name -> ClickHouse type.
        where: the file, for error messages.

    Returns:
        Column -> (min, max), in declaration order.

    Raises:
        ConfigError: a column that is not a declared numeric column, a bound that is not a
            finite number, or min > max.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: ranges must map a column to [min, max].")
    ranges: Ranges = {}
    for column, bounds in raw.items():
        at = f"{where}: ranges.{column}"
        if column not in column_types:
            raise ConfigError(f"{at}: not a declared column of this table.")
        if not is_numeric(column_types[column]):
            raise ConfigError(
                f"{at}: column type {column_types[column]} is not numeric; ranges apply to "
                "numeric columns only."
            )
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise ConfigError(f"{at}: expected [min, max], got {bounds!r}.")
        low, high = _bound(bounds[0], at), _bound(bounds[1], at)
        if low > high:
            raise ConfigError(f"{at}: min {bounds[0]} is greater than max {bounds[1]}.")
        ranges[column] = (low, high)
    return ranges


def literal(value: float) -> str:
    """A ClickHouse numeric literal for a validated finite bound."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def out_of_range(column: str, bounds: tuple[float, float]) -> str:
    """SQL true when ``column`` holds a value outside ``bounds`` (NaN and ±inf included).

    ``column`` must be a validated identifier (the catalog checks every declared name).
    """
    low, high = bounds
    quoted = f"`{column}`"
    return f"(isNotNull({quoted}) AND NOT ({quoted} BETWEEN {literal(low)} AND {literal(high)}))"


INVALID_PREFIX = "invalid "


def landed_but_untyped(column: str) -> str:
    """SQL true when ``column`` is null although its landed value (in ``_raw``) is not.

    The declared SQL types values with ``…OrNull`` functions, so text, an overflow or a
    negative number in an unsigned column would otherwise become a null that passes every
    range. Only columns whose landed name is the same are covered (``_raw`` keeps the
    landed names).
    """
    quoted = f"`{column}`"
    return (
        f"(isNull({quoted}) AND JSONType(_raw, '{column}') = 'String' "
        f"AND trimBoth(JSONExtractString(_raw, '{column}')) != '')"
    )


def any_out_of_range(ranges: Ranges) -> str:
    """SQL true when any ranged column of a row is out of range (``0`` with no ranges)."""
    return " OR ".join(out_of_range(c, b) for c, b in ranges.items()) or "0"


def reject_out_of_range(sql: str, ranges: Ranges) -> str:
    """Wrap a declared Silver SELECT so out-of-range rows get a reject reason.

    A reason the declared SQL already gave (e.g. a value that does not parse) is kept:
    it says more about the row than its range does. Then a ranged column that landed a
    value but typed to null is ``invalid <column>``; then the first ranged column out of
    range, in declaration order, names the reason.
    """
    if not ranges:
        return sql
    arms = "".join(f"        {landed_but_untyped(c)}, '{INVALID_PREFIX}{c}',\n" for c in ranges)
    arms += "".join(
        f"        {out_of_range(c, b)}, '{REASON_PREFIX}{c}',\n" for c, b in ranges.items()
    )
    return (
        "SELECT * REPLACE (\n    multiIf(\n        _reject_reason != '', _reject_reason,\n"
        f"{arms}        ''\n    ) AS _reject_reason\n)\nFROM (\n{sql.rstrip()}\n)"
    )
