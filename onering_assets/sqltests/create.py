"""``onering test --create KEY --where …``: a unit test written from live data, to review.

The given rows are read from what is published upstream (Bronze files for a Silver table,
Silver tables for a Gold mart), at most ``limit`` per table, in landing order; the expected
rows are what the table's code produces from them today (``run.py``, on a scratch chDB).
The test is appended to ``<table>.test.yml``: the user reads it and corrects any expected
row that is wrong, which is the point of writing it down.

Filters: ``--where COND`` applies to every upstream table that has all the columns COND
names; ``--where 'silver.weather: COND'`` to that table only. A table no filter applies
to is given whole if it is small (a lookup such as ``silver.airlines``), else refused.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlglot
import yaml
from sqlglot import exp

from onering_assets.catalog import INGESTION_COLUMNS, Catalog, SqlTable
from onering_assets.errors import ConfigError, ReadOnlyError
from onering_assets.sqlcheck import check_statement
from onering_assets.sqltests import run, spec
from onering_assets.sqltests.spec import Row, UnitTest, load_tests

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# An upstream table no filter applies to is given whole up to this many rows.
WHOLE_TABLE_ROWS = 200
TARGETED = re.compile(r"^\s*(?P<layer>[a-z_]+)\.(?P<table>[a-z0-9_]+)\s*:(?P<cond>.*)$", re.S)
# (layer, table) -> SQL that reads it (a table name or a table function), and parameters
Sources = Callable[[str, str], tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class Filter:
    table: tuple[str, str] | None  # None: every upstream table that has the columns
    condition: str
    columns: frozenset[str]


def parse_filter(text: str, table: SqlTable) -> Filter:
    """``COND`` or ``layer.table: COND``, refused unless it is one read-only condition."""
    target = None
    match = TARGETED.match(text)
    if match:
        target = (match["layer"], match["table"])
        if target not in table.upstream:
            reads = ", ".join(".".join(u) for u in table.upstream)
            raise ConfigError(
                f"--where {text!r}: {table.name} does not read {'.'.join(target)} ({reads})."
            )
        text = match["cond"]
    condition = text.strip()
    if not condition:
        raise ConfigError("--where needs a condition, e.g. \"carrier = 'AA'\".")
    statement = f"SELECT 1 FROM t WHERE {condition}"
    try:
        check_statement(statement, "clickhouse")
    except ReadOnlyError as err:
        reason = str(err).split(". ")[0].rstrip(".")
        raise ConfigError(f"--where {condition!r} is refused: {reason}.") from None
    where = sqlglot.parse_one(statement, dialect="clickhouse").find(exp.Where)
    if where is None or any(isinstance(n, exp.Select) for n in where.walk()):
        raise ConfigError(f"--where {condition!r}: one condition on the table's own columns.")
    columns = frozenset(c.name for c in where.find_all(exp.Column))
    return Filter(target, condition, columns)


def _condition(ref: tuple[str, str], columns: set[str], filters: list[Filter]) -> str | None:
    targeted = [f.condition for f in filters if f.table == ref]
    general = [f.condition for f in filters if f.table is None and f.columns <= columns]
    found = targeted or general
    return " AND ".join(f"({c})" for c in found) if found else None


def given_rows(
    client: Client,
    catalog: Catalog,
    table: SqlTable,
    sources: Sources,
    filters: list[Filter],
    limit: int,
) -> dict[tuple[str, str], list[Row]]:
    """Each upstream table's rows the filters pick, in landing order, without ingestion columns."""
    given: dict[tuple[str, str], list[Row]] = {}
    for ref in table.upstream:
        types = {c.name: c.type for c in catalog.table(*ref).columns}
        declared = list(types)
        source, params = sources(*ref)
        condition = _condition(ref, set(declared) | set(INGESTION_COLUMNS), filters)
        if condition is None:
            (count,) = run.query_rows(client, f"SELECT count() AS n FROM {source}", {}, params)
            if count["n"] > WHOLE_TABLE_ROWS:
                raise ConfigError(
                    f"No --where applies to {'.'.join(ref)} ({count['n']:,} rows): give one that "
                    f"names only its columns, e.g. --where '{'.'.join(ref)}: {declared[0]} = …'."
                )
        cols = ", ".join(f"`{c}`" for c in declared)
        where = f" WHERE {condition}" if condition else ""
        sql = f"SELECT {cols} FROM {source}{where} ORDER BY _ingested_at, _row LIMIT {limit}"
        try:
            given[ref] = run.query_rows(client, sql, types, params)
        except Exception as err:  # the engine's own error (an unknown column…): one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"Reading {'.'.join(ref)} for the test failed: {first}") from None
    return given


def _plain(value: Any) -> Any:
    """A value as YAML writes it readably: times as wall-clock text, no NaN."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _plain_rows(rows: list[Row], columns: list[str]) -> list[Row]:
    return [{c: _plain(r.get(c)) for c in columns} for r in rows]


def produced(
    client: Client, catalog: Catalog, table: SqlTable, given: dict[tuple[str, str], list[Row]]
) -> tuple[list[Row], list[Row] | None]:
    """What the table's code makes of the given rows today (rows, and Silver's rejects)."""
    probe = UnitTest(table, "probe", given, [], [] if table.layer == "silver" else None, table.path)
    outputs = run.produce(client, catalog, probe)
    columns = [c.name for c in table.columns]
    rows = _plain_rows(outputs["rows"], columns)
    if table.layer != "silver":
        return rows, None
    return rows, _plain_rows(outputs["rejects"], ["_row", "_reject_reason"])


def append_test(
    table: SqlTable,
    catalog: Catalog,
    name: str,
    given: dict[tuple[str, str], list[Row]],
    rows: list[Row],
    rejects: list[Row] | None,
) -> str:
    """Append the test to the table's ``.test.yml`` (made if missing); return its path."""
    path = spec.test_path(table)
    if path.exists() and any(t.name == name for t in load_tests(catalog, table)):
        raise ConfigError(f"{path} already has a test named {name!r}: give another --name.")
    expect: dict[str, Any] = {"rows": rows}
    if rejects is not None:
        expect["rejects"] = rejects
    test = {
        "name": name,
        "given": {
            ".".join(ref): [_plain_rows([r], list(r))[0] for r in given[ref]] for ref in given
        },
        "expect": expect,
    }
    text = yaml.safe_dump([test], sort_keys=False, allow_unicode=True, width=100)
    block = "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())
    header = (
        ""
        if path.exists()
        else f"# SQL unit tests of {table.layer}.{table.name}: onering test --select "
        f"'key:\"{table.layer}/{table.name}\"'.\ntests:\n"
    )
    note = "  # Written from live data by `onering test --create`: review the expected rows.\n"
    with path.open("a") as out:
        existing = path.stat().st_size
        if existing and not path.read_text().endswith("\n"):
            out.write("\n")
        out.write(header + note + block)
    load_tests(catalog, table)  # what was written reads back as a valid test file
    return str(path)
