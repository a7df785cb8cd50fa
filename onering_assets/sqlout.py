"""`onering sql` output: a spooled result as a text table, CSV or JSON, batch by batch.

- table: aligned columns (numbers right-aligned), one line per row, cells cut at
  ``MAX_CELL`` characters, NULL as ``NULL``, floats with at most ``FLOAT_DECIMALS``
  decimals; then ``(N rows)`` or ``showing 1,000 of 336,776 rows; --limit 0 for all``.
- csv: a header row, then the rows; NULL as an empty field, floats in full, booleans as
  true/false, bytes as hex, arrays and maps as JSON.
- json: one array, one object per line; NaN and ±Infinity as null, bytes as hex strings,
  dates and times (ISO 8601), decimals and UUIDs as strings, arrays and maps as JSON
  arrays and objects; a repeated column name gets ``_2``, ``_3``….

Every format writes one batch at a time, so memory holds one batch, not the result.
Values are converted a column at a time: a column of one type takes one fast path.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Protocol, TextIO
from uuid import UUID

from rich.cells import cell_len

MAX_CELL = 40
FLOAT_DECIMALS = 4
SPOOL_MEMORY = 16 * 1024**2
NoneType = type(None)
Column = Sequence[Any]
Batch = list[tuple[Any, ...]]


class TextFormat(Protocol):
    """Renders rows as text batch by batch: ``start``, ``rows`` per batch, ``end``."""

    def start(self, columns: list[str]) -> str: ...
    def rows(self, batch: Batch) -> str: ...
    def end(self) -> str: ...


class Spool:
    """One result kept aside (up to ``SPOOL_MEMORY`` in memory, then a temporary file).

    ``add`` keeps at most ``limit`` rows (0: all) and notes when there were more; ``total``
    is the number of rows in the whole result when known. With a ``text`` format each batch
    is rendered on arrival and kept as text; without, the rows are kept (pickled).
    """

    def __init__(self, limit: int = 0, text: TextFormat | None = None) -> None:
        self.limit, self.text = limit, text
        self.columns: list[str] = []
        self.rows = 0
        self.more = False
        self.total: int | None = None
        self._started = False
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115

    def add(self, batch: Batch) -> bool:
        """Keep ``batch`` (or the part within the limit); False once past the limit."""
        if self.limit and self.rows + len(batch) > self.limit:
            batch, self.more = batch[: self.limit - self.rows], True
        if batch and self.text is not None:
            self._start()
            self._file.write(self.text.rows(batch).encode())
        elif batch:
            pickle.dump(batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.rows += len(batch)
        if not self.more:
            self.total = self.rows
        return not self.more

    def _start(self) -> None:
        if not self._started and self.text is not None:
            self._started = True
            self._file.write(self.text.start(self.columns).encode())

    def finish(self) -> None:
        """End the text (its head too if no row came)."""
        if self.text is not None:
            self._start()
            self._file.write(self.text.end().encode())

    def batches(self) -> Iterator[Batch]:
        """The kept rows, batch by batch, from the start (without a text format)."""
        self._file.seek(0)
        while True:
            try:
                yield pickle.load(self._file)  # written by this process
            except EOFError:
                return

    def all_rows(self) -> list[tuple[Any, ...]]:
        return [row for batch in self.batches() for row in batch]

    def copy_to(self, out: TextIO, chunk: int = 1024**2) -> None:
        """The kept text, a chunk at a time (as bytes where ``out`` has a buffer)."""
        self._file.seek(0)
        out.flush()
        binary = getattr(out, "buffer", None)
        decode = codecs.getincrementaldecoder("utf-8")().decode
        while piece := self._file.read(chunk):
            if binary is not None:
                binary.write(piece)
            else:
                out.write(decode(piece))
        if binary is not None:
            binary.flush()

    def close(self) -> None:
        self._file.close()


def write(spool: Spool, out: TextIO) -> None:
    """Write ``spool`` to ``out``: its text (csv, json), or its rows as a table."""
    if spool.text is not None:
        spool.copy_to(out)
    else:
        write_table(spool, out)


def _convert(column: Column, keep: set[type], convert: Callable[[Any], Any]) -> Column:
    """``column`` with every value of a type outside ``keep`` passed through ``convert``."""
    kinds = set(map(type, column))
    if kinds <= keep:
        return column
    if NoneType in kinds:
        return [None if v is None else convert(v) for v in column]
    return list(map(convert, column))


def _converted(batch: Batch, convert: Callable[[Column], Column]) -> Iterator[tuple[Any, ...]]:
    return zip(*(convert(column) for column in zip(*batch, strict=True)), strict=True)


def _bytes_hex(value: Any) -> str:
    return bytes(value).hex()


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


# --- csv ---------------------------------------------------------------------------------

_CSV_PLAIN = {str, int, float, NoneType}
_CSV_FAST: dict[type, Callable[[Any], Any]] = {
    datetime: str, date: str, time: str, UUID: str, Decimal: str, bool: _bool_text,
    bytes: _bytes_hex,
}  # fmt: skip


def _csv_value(value: Any) -> Any:
    fast = _CSV_FAST.get(type(value))
    if fast is not None:
        return fast(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple | dict | set | frozenset):
        return json.dumps(_jsonable(value), default=str, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _csv_column(column: Column) -> Column:
    kinds = set(map(type, column)) - {NoneType}
    fast = _CSV_FAST.get(kinds.pop()) if len(kinds) == 1 else None
    return _convert(column, _CSV_PLAIN, fast or _csv_value)


class CsvText:
    """A header line, then one line per row."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def _taken(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def start(self, columns: list[str]) -> str:
        self._writer.writerow(columns)
        return self._taken()

    def rows(self, batch: Batch) -> str:
        self._writer.writerows(_converted(batch, _csv_column))
        return self._taken()

    def end(self) -> str:
        return ""


# --- json --------------------------------------------------------------------------------

_JSON_FAST: dict[type, Callable[[Any], Any]] = {
    datetime: datetime.isoformat, date: date.isoformat, time: time.isoformat, UUID: str,
    bytes: _bytes_hex,
}  # fmt: skip


def _jsonable(value: Any) -> Any:
    """``value`` as JSON takes it: no NaN or infinity (null), string keys, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, str | int | NoneType):
        return value
    fast = _JSON_FAST.get(type(value))
    if fast is not None:
        return fast(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value).hex()
    return str(value)  # IP addresses, intervals…


def _json_key(key: Any) -> str:
    text = _jsonable(key)
    return text if isinstance(text, str) else json.dumps(text, separators=(",", ":"))


def _json_column(column: Column) -> Column:
    kinds = set(map(type, column)) - {NoneType}
    if kinds == {float} and all(math.isfinite(v) for v in column if v is not None):
        return column
    fast = _JSON_FAST.get(kinds.pop()) if len(kinds) == 1 else None
    return _convert(column, {str, int, bool, NoneType}, fast or _jsonable)


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


class JsonText:
    """One array, one object per row per line."""

    def __init__(self) -> None:
        self._encode = json.JSONEncoder(
            default=str, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        ).encode
        self._names: list[str] = []
        self._first = True

    def start(self, columns: list[str]) -> str:
        self._names = unique_names(columns)
        return "["

    def rows(self, batch: Batch) -> str:
        names, encode = self._names, self._encode
        lines = [encode(dict(zip(names, r, strict=True))) for r in _converted(batch, _json_column)]
        text = ("\n" if self._first else ",\n") + ",\n".join(lines)
        self._first = False
        return text

    def end(self) -> str:
        return "]\n" if self._first else "\n]\n"


TEXT_FORMATS: dict[str, Callable[[], TextFormat]] = {"csv": CsvText, "json": JsonText}


# --- table -------------------------------------------------------------------------------


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10**-FLOAT_DECIMALS:
        return f"{value:.{FLOAT_DECIMALS - 1}e}"
    text = f"{value:.{FLOAT_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


_TEXT_FAST: dict[type, Callable[[Any], str]] = {
    str: str, int: str, float: _float_text, bool: _bool_text, datetime: str, date: str,
    Decimal: str, UUID: str, bytes: lambda v: "\\x" + v.hex(),
}  # fmt: skip


def _text(value: Any) -> str:
    fast = _TEXT_FAST.get(type(value))
    return fast(value) if fast is not None else str(_csv_value(value))


def _fit(text: str) -> str:
    """One line, at most ``MAX_CELL`` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "↵" if c == "\n" else " " for c in text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _cells(column: Column) -> list[str]:
    """The column's values as table cells."""
    kinds = set(map(type, column)) - {NoneType}
    text = _TEXT_FAST.get(kinds.pop(), _text) if len(kinds) == 1 else _text
    texts = ["NULL" if v is None else text(v) for v in column]
    if all(len(t) <= MAX_CELL and t.isprintable() for t in texts):
        return texts
    return list(map(_fit, texts))


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _is_number(column: Column) -> bool:
    kinds = set(map(type, column)) - {NoneType}
    return bool(kinds) and kinds <= {int, float, Decimal}


def _layout(spool: Spool) -> tuple[list[int], list[bool]]:
    """Each column's width and whether it is right-aligned (every value a number)."""
    widths = [_width(_fit(c)) for c in spool.columns]
    numeric = [True] * len(widths)
    seen = [False] * len(widths)
    for batch in spool.batches():
        for i, column in enumerate(zip(*batch, strict=True)):
            widths[i] = max(widths[i], *map(_width, _cells(column)))
            if any(v is not None for v in column):
                numeric[i] = numeric[i] and _is_number(column)
                seen[i] = True
    return widths, [n and s for n, s in zip(numeric, seen, strict=True)]


def _line(cells: Iterator[str] | list[str], widths: list[int], right: list[bool]) -> str:
    padded = (
        " " * (w - _width(c)) + c if r else c + " " * (w - _width(c))
        for c, w, r in zip(cells, widths, right, strict=True)
    )
    return (" " + " | ".join(padded)).rstrip()


def _lines(spool: Spool) -> Iterator[str]:
    widths, right = _layout(spool)
    yield _line([_fit(c) for c in spool.columns], widths, [False] * len(widths))
    yield "-" + "-+-".join("-" * w for w in widths) + "-"
    for batch in spool.batches():
        columns = [_cells(column) for column in zip(*batch, strict=True)]
        yield "\n".join(_line(list(cells), widths, right) for cells in zip(*columns, strict=True))


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
