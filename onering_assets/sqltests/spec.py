"""SQL unit tests declared beside each table: ``<table>.test.yml``.

A test gives rows for each upstream table the SQL reads and the rows it must produce,
in the shape dbt's and SQLMesh's unit tests use::

    tests:
      - name: a blank carrier is rejected, a duplicate keeps the row landed last
        given:
          bronze.airlines:
            - {carrier: " aa", name: American}
            - {carrier: AA, name: American Airlines}
            - {carrier: "", name: Nobody}
        expect:
          rows:
            - {carrier: AA, name: American Airlines}
          rejects:                              # Silver only
            - {_reject_reason: duplicate key}
            - {_reject_reason: "missing key: carrier"}

Only the columns an expected row names are compared (every expected row names the same
ones); rows match as a multiset, order ignored. An upstream table not given is empty.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from onering_assets.catalog import (
    INGESTION_COLUMNS,
    REJECT_COLUMNS,
    Catalog,
    SqlTable,
)
from onering_assets.errors import ConfigError

SUFFIX = ".test.yml"
Row = dict[str, Any]


@dataclass(frozen=True)
class UnitTest:
    """One declared test of one table."""

    table: SqlTable
    name: str
    given: dict[tuple[str, str], list[Row]]
    rows: list[Row]
    rejects: list[Row] | None
    path: Path

    @property
    def key(self) -> str:
        return f"{self.table.layer}/{self.table.name}"

    @property
    def title(self) -> str:
        return f"{self.key}: {self.name}"


def test_path(table: SqlTable) -> Path:
    return table.path.with_name(f"{table.name}{SUFFIX}")


def upstream_columns(catalog: Catalog, ref: tuple[str, str]) -> set[str]:
    """An upstream table's declared columns with the ingestion columns, as tests name them."""
    return {c.name for c in catalog.table(*ref).columns} | set(INGESTION_COLUMNS)


def _rows(value: Any, where: str) -> list[Row]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ConfigError(f"{where}: expected a list of rows, each a mapping of column: value.")
    return [{str(k): v for k, v in row.items()} for row in value]


def _expected(value: Any, allowed: set[str], where: str) -> list[Row]:
    rows = _rows(value, where)
    for i, row in enumerate(rows[1:], start=2):
        if set(row) != set(rows[0]):
            differ = sorted(set(row) ^ set(rows[0]))
            raise ConfigError(
                f"{where}: row {i} and row 1 differ in {', '.join(differ)}; every expected row "
                "names the same columns (the ones compared)."
            )
    unknown = sorted({c for r in rows for c in r} - allowed)
    if unknown:
        raise ConfigError(f"{where}: no column {', '.join(unknown)} in the output.")
    return rows


def _given(
    catalog: Catalog, table: SqlTable, given_spec: Any, where: str
) -> dict[tuple[str, str], list[Row]]:
    """Rows for each upstream table (empty for one not given), checked against its columns."""
    if not isinstance(given_spec, dict):
        raise ConfigError(f"{where}: given maps each upstream table (layer.table) to rows.")
    upstream = set(table.upstream)
    given: dict[tuple[str, str], list[Row]] = {u: [] for u in sorted(upstream)}
    for ref, rows in given_spec.items():
        layer, _, name = str(ref).partition(".")
        if (layer, name) not in upstream:
            reads = ", ".join(".".join(u) for u in sorted(upstream))
            raise ConfigError(f"{where}: {table.name} does not read {ref} (it reads {reads}).")
        rows = _rows(rows, f"{where}: given {ref}")
        unknown = sorted({c for r in rows for c in r} - upstream_columns(catalog, (layer, name)))
        if unknown:
            raise ConfigError(f"{where}: given {ref}: no column {', '.join(unknown)} in {ref}.")
        given[(layer, name)] = rows
    return given


def _one(catalog: Catalog, table: SqlTable, spec: Any, path: Path, i: int) -> UnitTest:
    where = f"{path}: test {i + 1}"
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ConfigError(f"{where}: each test is a mapping with a name, given and expect.")
    where = f"{path}: test {spec['name']!r}"
    unknown_keys = sorted(set(spec) - {"name", "description", "given", "expect"})
    if unknown_keys:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown_keys))}; a test has name, "
            "description, given and expect."
        )
    given = _given(catalog, table, spec.get("given") or {}, where)
    expect = spec.get("expect")
    if not isinstance(expect, dict) or "rows" not in expect:
        raise ConfigError(f"{where}: expect needs rows (an empty list for none).")
    extra = sorted(set(expect) - {"rows", "rejects"})
    if extra:
        raise ConfigError(
            f"{where}: expect has rows and rejects, not {', '.join(map(str, extra))}."
        )
    outputs = {c.name for c in table.columns}
    if table.layer == "silver":
        outputs |= set(INGESTION_COLUMNS)
    rejects = None
    if "rejects" in expect:
        if table.layer != "silver":
            raise ConfigError(f"{where}: only a Silver table has rejects.")
        allowed = {"_partition", "_batch_id", "_row", *REJECT_COLUMNS}
        rejects = _expected(expect["rejects"], allowed, f"{where}: expect rejects")
    return UnitTest(
        table,
        str(spec["name"]),
        given,
        _expected(expect["rows"], outputs, f"{where}: expect rows"),
        rejects,
        path,
    )


def load_tests(catalog: Catalog, table: SqlTable) -> list[UnitTest]:
    """The table's declared tests (none when it has no ``.test.yml``)."""
    path = test_path(table)
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    specs = data.get("tests") if isinstance(data, dict) else None
    if not isinstance(specs, list) or not specs:
        raise ConfigError(f"{path}: expected `tests:`, a list of tests.")
    tests = [_one(catalog, table, spec, path, i) for i, spec in enumerate(specs)]
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two tests share a name.")
    return tests


def _wall_clock(value: dt.datetime) -> str:
    """A time as ClickHouse prints it: wall-clock time in its own time zone, no offset."""
    text = value.replace(tzinfo=None).isoformat(sep=" ")
    return text.removesuffix(".000000") if "." in text else text


def same(expected: Any, actual: Any) -> bool:
    """Whether an expected value (as YAML read it) is the value the table produced.

    Integers compare exactly, other numbers within 1e-9 (relative or absolute), never a
    number with text; a time compares as its wall-clock
    text in the column's time zone (``"2013-01-01 05:15:00"``), or as an instant when the
    expected value carries an offset; a date as ``YYYY-MM-DD``; null only equals null.
    """
    if expected is None or actual is None:
        return expected is None and (actual is None or _nan(actual))
    if isinstance(actual, dt.datetime):
        if isinstance(expected, dt.datetime) and expected.tzinfo and actual.tzinfo:
            return expected == actual
        text = (
            expected.isoformat(sep=" ")
            if isinstance(expected, dt.datetime)
            else expected.isoformat()
            if isinstance(expected, dt.date)
            else str(expected)
        )
        return text == _wall_clock(actual)
    if isinstance(actual, dt.date):
        return str(expected.isoformat() if isinstance(expected, dt.date) else expected) == str(
            actual.isoformat()
        )
    if _number(expected) and _number(actual):
        exact = (int, decimal.Decimal)
        if isinstance(expected, exact) and isinstance(actual, exact):
            return decimal.Decimal(expected) == decimal.Decimal(actual)  # exact, any size
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)
    if _number(expected) or _number(actual):
        return False  # "1" is not 1: a quoted number in YAML is text
    return expected == actual


def _number(value: Any) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def shown(value: Any) -> str:
    """A produced value as a test failure prints it."""
    if value is None or _nan(value):
        return "null"
    if isinstance(value, dt.datetime):
        return _wall_clock(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
