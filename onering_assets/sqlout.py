"""`onering sql` output: a spooled result as a text table, CSV or JSON, batch by batch.

- table: aligned columns (numbers right-aligned), one line per row, cells cut at
  ``MAX_CELL`` characters, NULL as ``NULL``, floats with at most ``FLOAT_DECIMALS``
  decimals; then ``(N rows)`` or ``showing 1,000 of 336,776 rows; --limit 0 for all``.
- csv: a header row, then the rows; NULL as an empty field, floats in full.
- json: one array, one object per line; NaN and ±Infinity as null, bytes as hex strings,
  dates, times, decimals and UUIDs as strings, arrays and maps as JSON arrays and objects;
  a repeated column name gets ``_2``, ``_3``….

Every format writes one batch at a time, so memory holds one batch, not the result.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TextIO

from rich.cells import cell_len

from onering_assets.query import Spool

MAX_CELL = 40
FLOAT_DECIMALS = 4
_PLAIN = (str, int, float, type(None))  # written as they are (bool is not among them)


def write(spool: Spool, fmt: str, out: TextIO) -> None:
    """Write ``spool`` to ``out`` as ``table``, ``csv`` or ``json``."""
    {"table": write_table, "csv": write_csv, "json": write_json}[fmt](spool, out)


# --- csv ---------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple | dict):
        return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return str(value)


def write_csv(spool: Spool, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(spool.columns)
    for batch in spool.batches():
        writer.writerows([[_csv_value(v) for v in row] for row in batch])


# --- json --------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)  # Decimal, UUID, IP addresses, intervals…


def _jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities as None and map keys as strings, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    return json.dumps(_jsonable(key), default=_json_default, separators=(",", ":"))


def unique_names(columns: list[str]) -> list[str]:
    """Column names made unique for JSON keys: ``a, a, b`` -> ``a, a_2, b``."""
    seen: set[str] = set()
    names = []
    for column in columns:
        name, n = column, 1
        while name in seen:
            n += 1
            name = f"{column}_{n}"
        seen.add(name)
        names.append(name)
    return names


def write_json(spool: Spool, out: TextIO) -> None:
    strict = json.JSONEncoder(
        default=_json_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
    )
    names = unique_names(spool.columns)
    out.write("[")
    first = True
    for batch in spool.batches():
        lines = []
        for row in batch:
            record = dict(zip(names, row, strict=True))
            try:
                lines.append(strict.encode(record))
            except (ValueError, TypeError):  # NaN/Infinity, or a map with odd keys
                lines.append(strict.encode(_jsonable(record)))
        if lines:
            out.write(("\n" if first else ",\n") + ",\n".join(lines))
            first = False
    out.write("\n]\n" if not first else "]\n")


# --- table -------------------------------------------------------------------------------


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10**-FLOAT_DECIMALS:
        return f"{value:.{FLOAT_DECIMALS - 1}e}"
    text = f"{value:.{FLOAT_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _cell(value: Any) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, float):
        text = _float_text(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, bytes | bytearray | memoryview):
        text = "\\x" + bytes(value).hex()
    elif isinstance(value, str):
        text = value
    else:
        text = str(_csv_value(value))
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "↵" if c == "\n" else " " for c in text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _layout(spool: Spool) -> tuple[list[int], list[bool]]:
    """Each column's width and whether it is right-aligned (every value a number)."""
    widths = [_width(_cell(c)) for c in spool.columns]
    numeric = [True] * len(widths)
    for batch in spool.batches():
        for row in batch:
            for i, value in enumerate(row):
                widths[i] = max(widths[i], _width(_cell(value)))
                if value is not None and numeric[i] and not _is_number(value):
                    numeric[i] = False
    return widths, numeric


def _padder(width: int, right: bool) -> Callable[[str], str]:
    def pad(text: str) -> str:
        gap = " " * (width - _width(text))
        return gap + text if right else text + gap

    return pad


def _lines(spool: Spool) -> Iterator[str]:
    widths, numeric = _layout(spool)
    header = [_padder(w, False) for w in widths]
    yield " " + " | ".join(p(_cell(c)) for p, c in zip(header, spool.columns, strict=True))
    yield "-" + "-+-".join("-" * w for w in widths) + "-"
    pads = [_padder(w, right) for w, right in zip(widths, numeric, strict=True)]
    for batch in spool.batches():
        yield "\n".join(
            " " + " | ".join(p(_cell(v)) for p, v in zip(pads, row, strict=True)) for row in batch
        )


def footer(spool: Spool) -> str:
    """``(3 rows)``, or what was left out and how to see it."""
    if not spool.more:
        return f"({spool.rows:,} row{'' if spool.rows == 1 else 's'})"
    of = f"{spool.total:,}" if spool.total is not None else f"more than {spool.rows:,}"
    return f"showing {spool.rows:,} of {of} rows; --limit 0 for all"


def write_table(spool: Spool, out: TextIO) -> None:
    if spool.columns:
        for text in _lines(spool):
            if text:
                out.write(text + "\n")
    out.write(footer(spool) + "\n")
