"""Parse landed CSV bytes as strings, whole or as a stream of chunks cut at line ends.

A line that cannot be a row (unbalanced quotes, the wrong number of fields, bytes that are
not UTF-8) is set aside with its physical line number, the reason and its exact bytes. Every
line is judged on its own, so a file parsed in chunks cut at line ends gives the same rows,
line numbers and set-aside lines as the whole file parsed at once.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from onering_assets.errors import SourceError
from onering_assets.settings import CHUNK_BYTES

NULL_VALUES = ["NA", ""]
BOM = b"\xef\xbb\xbf"
# pyarrow's default; a block must hold the longest line, so bigger lines raise it.
_BLOCK_SIZE = 1 << 20
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\n|\r|$)")
MALFORMED_SCHEMA = pa.schema([("line", pa.int64()), ("reason", pa.string()), ("raw", pa.binary())])


@dataclass(frozen=True)
class Parsed:
    """A parsed CSV: its rows as strings, where each row was, and the lines set aside.

    ``lines`` holds each row's physical line number in the file (the header is line 1);
    ``malformed`` has the columns of ``MALFORMED_SCHEMA``: ``line``, ``reason``, ``raw``.
    """

    table: pa.Table
    lines: pa.Array
    malformed: pa.Table = field(default_factory=MALFORMED_SCHEMA.empty_table)

    @property
    def landed(self) -> int:
        """Data lines found in the file: rows plus lines set aside."""
        return self.table.num_rows + self.malformed.num_rows


@dataclass(frozen=True)
class _Layout:
    """The column names, and the physical line number of a body's first line.

    A body is the data lines of a piece: after the header in the first piece, all of a later one.
    """

    names: list[str]
    first_line: int


def header(data: bytes, name: str) -> tuple[list[str], int]:
    """Column names and the index of the header line (the first non-blank one)."""
    # Lines are found one at a time: splitting a whole file just for its header costs copies.
    index, line = next((i, m[1]) for i, m in enumerate(_LINE.finditer(data)) if m[1].strip())
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(
            f"{name}: line {index + 1}: the header is not UTF-8 (byte {err.start + 1}); "
            "re-save the file as UTF-8."
        ) from None
    try:
        names = next(csv.reader([text], strict=True))
    except csv.Error as err:
        raise SourceError(f"{name}: line {index + 1}: unreadable header ({err}).") from None
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates or "" in names:
        what = f"duplicate column(s) {', '.join(duplicates)}" if duplicates else "an empty name"
        raise SourceError(f"{name}: line {index + 1}: the header has {what}.")
    return names, index


def _arrow(body: bytes, names: list[str], block_size: int, invalid: list[str]) -> pa.Table:
    """Read data lines with pyarrow (multithreaded), every column a string, named ``names``.

    pyarrow never reads the header (``header`` did), so a BOM or blank lines before it cannot
    change the columns. Invalid rows are counted.
    """

    def skip(row: pacsv.InvalidRow) -> str:
        invalid.append(row.text or "")
        return "skip"

    if not body:
        return pa.table({n: pa.array([], pa.string()) for n in names})
    if body.startswith(BOM):
        body = b"\n" + body  # pyarrow drops a BOM that starts its input; here it is data
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=NULL_VALUES,
        strings_can_be_null=True,
    )
    return pacsv.read_csv(
        pa.BufferReader(body),
        read_options=pacsv.ReadOptions(block_size=block_size, column_names=names),
        parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
        convert_options=convert,
    )


def _is_utf8(data: bytes) -> bool:
    if data.isascii():  # the common case, checked at memory speed
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def physical_lines(data: bytes) -> int:
    """Physical lines in ``data`` as ``bytes.splitlines`` counts them."""
    if not data:
        return 0
    if data.count(b"\r") != data.count(b"\r\n"):  # a lone CR ends a line too
        return len(data.splitlines())
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _fast(body: bytes, layout: _Layout) -> Parsed | None:
    """The common case, at pyarrow's speed: every physical line is one good row.

    Taken only when pyarrow cannot judge a line otherwise than ``defect`` does: no quote
    anywhere (pyarrow accepts ``"x"y`` and closes a quote left open at the end of its
    input), valid UTF-8, and exactly one row per physical line (a blank line, a lone CR
    in a value, a value spanning lines or a line longer than a block all break that).
    Otherwise None: the line-by-line path decides, line by line.
    """
    if b'"' in body or not _is_utf8(body):
        return None
    invalid: list[str] = []
    try:
        table = _arrow(body, layout.names, _BLOCK_SIZE, invalid)
    except pa.ArrowInvalid:
        return None
    if invalid or table.num_rows != physical_lines(body):
        return None
    first = layout.first_line
    return Parsed(table, pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)))


def defect(line: bytes, expected: int) -> str | None:
    """Why one physical line cannot be a row of ``expected`` fields (None if it can)."""
    if not line.isascii():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            return f"invalid UTF-8 at byte {err.start + 1} of the line"
    if b'"' not in line:
        found = line.count(b",") + 1
    else:
        try:
            found = len(next(csv.reader([line.decode("utf-8")], strict=True)))
        except csv.Error:
            return "unbalanced quotes"
    return None if found == expected else f"wrong field count: {found}, expected {expected}"


def _by_line(body: bytes, layout: _Layout, name: str) -> Parsed:
    """Line by line: set bad lines aside, then parse the good ones with pyarrow.

    A quoted value spanning lines is not supported: its lines are set aside, never joined.
    """
    good: list[bytes] = []
    numbers: list[int] = []
    bad: dict[str, list] = {"line": [], "reason": [], "raw": []}
    for number, line in enumerate(body.splitlines(), layout.first_line):
        if not line:
            continue  # a blank line carries no value
        reason = defect(line, len(layout.names))
        if reason is None:
            good.append(line)
            numbers.append(number)
        else:
            bad["line"].append(number)
            bad["reason"].append(reason)
            bad["raw"].append(line)
    # A pyarrow block must hold a whole line; twice the longest leaves room for its neighbours.
    longest = max((len(line) for line in good), default=0)
    invalid: list[str] = []
    joined = b"\n".join(good) + b"\n" if good else b""
    try:
        table = _arrow(joined, layout.names, max(_BLOCK_SIZE, 2 * longest + 2), invalid)
    except pa.ArrowInvalid as err:
        raise SourceError(f"{name} is not a readable CSV file: {err}") from None
    if invalid or table.num_rows != len(numbers):
        raise SourceError(
            f"{name}: a line the CSV parser refuses: {invalid[0][:80] if invalid else '?'!r}."
        )
    malformed = pa.Table.from_pydict(bad, schema=MALFORMED_SCHEMA)
    return Parsed(table, pa.array(numbers, pa.int64()), malformed)


def _parse(body: bytes, layout: _Layout, name: str) -> Parsed:
    return _fast(body, layout) or _by_line(body, layout, name)


def _after_header(data: bytes, index: int) -> int:
    """Byte offset where the line after line ``index`` (0-based) starts."""
    return next(m.end() for i, m in enumerate(_LINE.finditer(data)) if i == index)


def _empty() -> Parsed:
    return Parsed(pa.table({}), pa.array([], pa.int64()))


def parse_csv(data: bytes, *, name: str) -> Parsed:
    """Parse CSV bytes keeping every value as landed (strings; ``NA`` and empty as null).

    A UTF-8 byte-order mark is dropped and CRLF line endings are read like LF. A file with
    no header is an empty table with no columns; one with only a header has no rows.
    """
    data = data.removeprefix(BOM)
    if not data or data.isspace():
        return _empty()
    names, start = header(data, name)
    return _parse(data[_after_header(data, start) :], _Layout(names, start + 2), name)


def _cut(buffer: bytes) -> int:
    """Length of the longest prefix of ``buffer`` ending at a line end (0 if none).

    A carriage return as the last byte may be half of a CRLF, so it does not end a prefix.
    """
    at = buffer.rfind(b"\n")
    if at < 0:
        at = buffer.rfind(b"\r", 0, len(buffer) - 1)
    return at + 1


def line_chunks(stream: IO[bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The stream's bytes in pieces of about ``size``, each ending at a line end.

    The last piece ends where the stream does; a line longer than ``size`` makes its piece
    longer.
    """
    pending = b""
    want = size
    while True:
        block = stream.read(want)
        if not block:
            if pending:
                yield pending
            return
        buffer = pending + block if pending else block
        cut = _cut(buffer)
        # No line end yet: read as much again, so a long line costs linear time, not square.
        want = size if cut else max(size, len(buffer))
        if cut == 0:
            pending = buffer
            continue
        yield buffer[:cut] if cut < len(buffer) else buffer
        pending = buffer[cut:]


def parse_chunks(chunks: Iterator[bytes], *, name: str) -> Iterator[Parsed]:
    """Parse a file given as pieces cut at line ends (``line_chunks``), one ``Parsed`` each.

    The same rows, line numbers and set-aside lines as ``parse_csv`` of the whole file. A
    file with no header yields one empty table with no columns.
    """
    seen = 0  # physical lines in the pieces before this one
    layout: _Layout | None = None
    for i, raw in enumerate(chunks):
        data = raw.removeprefix(BOM) if i == 0 else raw
        if layout is None:
            if not data or data.isspace():
                seen += physical_lines(data)
                continue
            names, start = header(data, name)
            body = data[_after_header(data, start) :]
            yield _parse(body, _Layout(names, seen + start + 2), name)
            layout = _Layout(names, 0)
        else:
            yield _parse(data, _Layout(layout.names, seen + 1), name)
        seen += physical_lines(data)
    if layout is None:
        yield _empty()


def read_csv_as_strings(data: bytes, *, name: str) -> pa.Table:
    """The rows of CSV bytes as strings; refuses the file if any line had to be set aside."""
    parsed = parse_csv(data, name=name)
    refuse_malformed(parsed.malformed, name)
    return parsed.table


def refuse_malformed(malformed: pa.Table, name: str) -> None:
    """One-line error for a caller that cannot quarantine the lines set aside."""
    if malformed.num_rows:
        first = malformed.slice(0, 1).to_pylist()[0]
        raise SourceError(
            f"{name}: line {first['line']}: {first['reason']} ({malformed.num_rows} malformed "
            "line(s) in all); fix or remove them and land the file again."
        )
