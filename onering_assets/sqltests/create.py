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

from onering_assets.catalog import Catalog, SqlTable
from onering_assets.errors import ConfigError, ReadOnlyError
from onering_assets.sqlcheck import check_statement
from onering_assets.sqltests import run, spec
from onering_assets.sqltests.spec import Row, UnitTest, load_tests, upstream_columns

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# Functions that read a table (or the server) by name: a filter reads its own table only.
TABLE_READING = ("join", "dict")
TABLE_READING_NAMES = {"hascolumnintable", "getsetting", "getserversetting", "getmacro"}
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


def parse_filter(text: str, table: SqlTable, catalog: Catalog) -> Filter:
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
        if "tokeniz" in reason.lower() or "parse" in reason.lower():
            reason = "it does not parse as a ClickHouse condition (an unclosed quote?)"
        raise ConfigError(f"--where {condition!r} is refused: {reason}.") from None
    where = sqlglot.parse_one(statement, dialect="clickhouse").find(exp.Where)
    if where is None:
        raise ConfigError(f"--where {condition!r}: one condition on the table's own columns.")
    _own_columns_only(where, condition)
    columns = frozenset(c.name for c in where.find_all(exp.Column))
    if target is not None:
        unknown = sorted(columns - upstream_columns(catalog, target))
        if unknown:
            raise ConfigError(
                f"--where {condition!r}: {'.'.join(target)} has no column {', '.join(unknown)}."
            )
    return Filter(target, condition, columns)


def _own_columns_only(where: exp.Expr, condition: str) -> None:
    """Refuse a condition that reads anything but the filtered table's own columns."""
    own = f"--where {condition!r}: one condition on the table's own columns"
    if any(isinstance(n, exp.Select | exp.Table) for n in where.walk()):
        raise ConfigError(f"{own}.")
    qualified = [c.sql() for c in where.find_all(exp.Column) if c.table]
    if qualified:
        raise ConfigError(f"{own}, unqualified (not {', '.join(qualified)}).")
    for func in where.find_all(exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if name.startswith(TABLE_READING) or name in TABLE_READING_NAMES:
            raise ConfigError(f"{own}: {name}() reads another table or the server.")


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
    read = read_columns(table)
    everywhere = {ref: upstream_columns(catalog, ref) for ref in table.upstream}
    for f in filters:
        if f.table is None and not any(f.columns <= cols for cols in everywhere.values()):
            missing = sorted(f.columns - set().union(*everywhere.values()))
            raise ConfigError(
                f"--where {f.condition!r} applies to no table {table.name} reads"
                + (f": no column {', '.join(missing)} in any of them." if missing else ".")
            )
    for ref in table.upstream:
        types = {c.name: c.type for c in catalog.table(*ref).columns}
        declared = list(types)
        source, params = sources(*ref)
        condition = _condition(ref, everywhere[ref], filters)
        if condition is None:
            (count,) = _read(client, ref, f"SELECT count() AS n FROM {source}", {}, params)
            if count["n"] > WHOLE_TABLE_ROWS:
                missing = sorted(
                    {c for f in filters if f.table is None for c in f.columns} - set(types)
                )
                named = f" (it has no column {', '.join(missing)})" if missing else ""
                raise ConfigError(
                    f"No --where applies to {'.'.join(ref)}{named}, {count['n']:,} rows: give "
                    "one that names only its columns, e.g. "
                    f"--where '{'.'.join(ref)}: {declared[0]} = …'."
                )
        cols = ", ".join(f"`{c}`" for c in declared if c in read.get(ref, declared))
        where = f" WHERE {condition}" if condition else ""
        sql = f"SELECT {cols} FROM {source}{where} ORDER BY _ingested_at, _row LIMIT {limit}"
        given[ref] = _read(client, ref, sql, types, params)
        if condition and not given[ref]:
            raise ConfigError(f"No row of {'.'.join(ref)} matches {condition}: nothing to test.")
    return given


def _read(
    client: Client, ref: tuple[str, str], sql: str, types: dict[str, str], params: dict[str, str]
) -> list[Row]:
    """Rows of an upstream table; the engine's own error (an unknown column…) as one line."""
    try:
        return run.query_rows(client, sql, types, params)
    except Exception as err:
        hint = " (materialize it first)" if "does not exist" in str(err) else ""
        raise ConfigError(
            f"Reading {'.'.join(ref)} for the test failed{hint}: {run.first_line(err)}"
        ) from None


def read_columns(table: SqlTable) -> dict[tuple[str, str], set[str]]:
    """The columns of each upstream table a Gold mart's SQL reads (all of a Bronze table's).

    A test from live data gives only these, so that its rows stay readable.
    """
    from onering_assets.change.declared import shaping_columns

    if table.layer == "silver":
        return {}
    read: dict[tuple[str, str], set[str]] = {ref: set() for ref in table.upstream}
    for sources in table.parsed.column_lineage.values():
        for layer, name, column in sources:
            read.setdefault((layer, name), set()).add(column.strip('"'))
    from onering_assets.catalog import load_catalog, schema_of

    schema = schema_of(load_catalog().silver)
    for layer, name in table.upstream:
        shaping = shaping_columns(table, layer, name, schema)
        every = set(schema.get(layer, {}).get(name, {}))
        read[(layer, name)] |= every if shaping is None else shaping
    return read


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


def _flow(value: Any) -> str:
    """One value (a row, a name) as one line of YAML flow style."""
    return (
        yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
        .strip()
        .removesuffix("\n...")
        .strip()
    )


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
    lines = [f"- name: {_flow(name)}", "  given:"]
    for ref, rows in given.items():
        lines.append(f"    {'.'.join(ref)}:" + ("" if rows else " []"))
        lines += [f"      - {_flow(_plain_rows([r], list(r))[0])}" for r in rows]
    lines.append("  expect:")
    for output, rows in expect.items():
        lines.append(f"    {output}:" + ("" if rows else " []"))
        lines += [f"      - {_flow(r)}" for r in rows]
    block = "".join(f"  {line}\n" for line in lines)
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
