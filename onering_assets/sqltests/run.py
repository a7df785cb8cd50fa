"""Run SQL unit tests through the code that builds the tables, on scratch stores.

Silver: the given Bronze rows go into Memory tables of a scratch chDB, and the table is
staged by ``silver.plan.stage_statements``, the statements a build runs (declared ranges,
the de-duplication, the split into rows and rejects). Gold: the given Silver rows go into
the Silver tables as their YAML declares them, the mart is computed by
``gold.publish.compute`` as a build computes it, and, when a Postgres is given, loaded by
``gold.publish.stage`` into a temporary table shaped like the mart and read back from
there (Postgres's own types and rounding), then rolled back: nothing is written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from onering_assets.catalog import INGESTION_COLUMNS, INGESTION_TYPES, Catalog, SqlTable
from onering_assets.silver import plan
from onering_assets.sqltests.spec import Row, UnitTest, same, shown

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from clickhouse_connect.driver.client import Client

INPUT_DATABASE = "unittest_input"
RUN = "unittest"
# Ingestion columns of a given row that does not set them: one batch, rows in given order.
INGESTED_AT = "2013-01-01 00:00:00.000"


@dataclass(frozen=True)
class Mismatch:
    """Expected rows not produced, and produced rows not expected, of one output."""

    output: str
    missing: list[Row]
    unexpected: list[Row]
    absent: tuple[str, ...] = ()  # expected columns the output does not have at all

    def lines(self) -> list[str]:
        if self.absent:
            return [f"  {self.output}: no column {', '.join(self.absent)} is produced"]
        out = [
            f"  {self.output}: {len(self.missing)} expected row(s) not produced, "
            f"{len(self.unexpected)} produced row(s) not expected"
        ]
        out += [f"    - expected, not produced: {_row_text(r)}" for r in self.missing]
        out += [f"    + produced, not expected: {_row_text(r)}" for r in self.unexpected]
        return out


@dataclass
class Outcome:
    test: UnitTest
    mismatches: list[Mismatch] = field(default_factory=list)
    engines: tuple[str, ...] = ()
    error: str | None = None  # the engine refused the SQL or a given value: its first line

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.error is None


def _row_text(row: Row) -> str:
    return "{" + ", ".join(f"{k}: {shown(v)}" for k, v in row.items()) + "}"


def compare(
    output: str, expected: list[Row], actual: list[Row], produced: set[str] | None = None
) -> Mismatch | None:
    """Match expected rows to produced ones as a multiset, on the columns expected names.

    ``produced``: the output's columns; an expected column missing from it is a mismatch
    (never read as null).
    """
    columns = list(expected[0]) if expected else None
    absent = tuple(c for c in columns or () if produced is not None and c not in produced)
    if absent:
        return Mismatch(output, expected, [], absent)
    remaining = list(actual)
    missing = []
    for row in expected:
        assert columns is not None
        for i, got in enumerate(remaining):
            if all(same(row[c], got.get(c)) for c in columns):
                del remaining[i]
                break
        else:
            missing.append(row)
    unexpected = [{c: r.get(c) for c in columns} if columns else r for r in remaining]
    return Mismatch(output, missing, unexpected) if missing or unexpected else None


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return value


def _bronze_partitions(rows: list[Row]) -> list[str]:
    """Each given row's month as Bronze assigns it (``bronze.ingest.month_of_rows``)."""
    import pyarrow as pa

    from onering_assets.bronze.ingest import month_of_rows

    def strings(column: str) -> pa.Array:
        values = [row.get(column) for row in rows]
        return pa.array([None if v is None else str(v) for v in values], pa.string())

    months = month_of_rows(pa.table({"year": strings("year"), "month": strings("month")}))
    return [m or "" for m in months.to_pylist()]


def _with_ingestion(rows: list[Row], partitioned_bronze: bool) -> list[Row]:
    """Given rows with the ingestion columns they do not set: one batch, rows in order."""
    out = []
    months = _bronze_partitions(rows) if partitioned_bronze else [""] * len(rows)
    for i, (row, month) in enumerate(zip(rows, months, strict=True), start=1):
        defaults = {
            "_batch_id": RUN,
            "_ingested_at": INGESTED_AT,
            "_source": RUN,
            "_partition": month,
            "_row": i,
        }
        out.append({**defaults, **row})
    return out


def _insert(client: Client, table: str, rows: list[Row], strings: bool) -> None:
    if not rows:
        return
    lines = []
    for row in rows:
        values = {
            k: (None if v is None else str(_json_value(v)))
            if strings and not k.startswith("_")
            else _json_value(v)
            for k, v in row.items()
        }
        lines.append(json.dumps(values))
    client.command(f"INSERT INTO {table} FORMAT JSONEachRow\n" + "\n".join(lines))


TIME_ZONE = re.compile(r"DateTime(?:64)?\((?:\d+,\s*)?'([^']+)'\)")


def _in_zone(value: Any, zone: ZoneInfo | None) -> Any:
    """A time in its column's zone (the client hands some back as naive UTC)."""
    if zone is None or not isinstance(value, dt.datetime):
        return value
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(zone)


def query_rows(
    client: Client, sql: str, types: dict[str, str], params: dict[str, str] | None = None
) -> list[Row]:
    """Rows as dicts, each time in its column's zone as ``types`` declares the column.

    chDB's client reports a ``DateTime('zone')`` column as ``DateTime`` and hands its
    values back as naive UTC, so the zone must come from the table's declaration.
    """
    result = client.query(sql, parameters=params or {})
    zones = []
    for name in result.column_names:
        match = TIME_ZONE.search(types.get(name, ""))
        zones.append(ZoneInfo(match.group(1)) if match else None)
    return [
        {name: _in_zone(v, z) for name, v, z in zip(result.column_names, r, zones, strict=True)}
        for r in result.result_rows
    ]


def _select(client: Client, table: str) -> list[Row]:
    types = {str(r[0]): str(r[1]) for r in client.query(f"DESCRIBE TABLE {table}").result_rows}
    return query_rows(client, f"SELECT * FROM {table}", types)


def _reset(client: Client) -> None:
    for database in ("silver", INPUT_DATABASE):
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    client.command(f"CREATE DATABASE {INPUT_DATABASE}")
    client.command(f"CREATE DATABASE {plan.DATABASE}")


def _silver_tables(client: Client, table: SqlTable) -> None:
    for statement in plan.create_statements(table):
        client.command(statement)


def _silver(client: Client, catalog: Catalog, test: UnitTest) -> dict[str, list[Row]]:
    _reset(client)
    table = test.table
    _silver_tables(client, table)
    sources = {}
    for (_, name), rows in test.given.items():
        bronze = catalog.table("bronze", name)
        columns = [(c.name, "Nullable(String)") for c in bronze.columns]
        columns += [(c, INGESTION_TYPES[c]) for c in INGESTION_COLUMNS]
        source = f"{INPUT_DATABASE}.{plan.quote(name)}"
        client.command(
            f"CREATE TABLE {source} ({', '.join(f'{plan.quote(n)} {t}' for n, t in columns)})"
            " ENGINE = Memory"
        )
        _insert(client, source, _with_ingestion(rows, bronze.partitioned), strings=True)
        sources[name] = source
    names = plan.SilverNames(table.name, RUN)
    for statement in plan.stage_statements(table, [plan.source_sql(table, sources)], names):
        client.command(statement)
    return {
        "rows": _select(client, names.stage),
        "rejects": _select(client, names.rejects_stage),
    }


def _gold(client: Client, catalog: Catalog, test: UnitTest) -> pa.Table:
    from onering_assets.gold import publish

    _reset(client)
    for (_, name), rows in test.given.items():
        upstream = catalog.sql_table("silver", name)
        _silver_tables(client, upstream)
        target = f"{plan.DATABASE}.{plan.quote(name)}"
        _insert(client, target, _with_ingestion(rows, False), strings=False)
    return publish.compute(client, test.table, None)


def produce(client: Client, catalog: Catalog, test: UnitTest) -> dict[str, list[Row]]:
    """What the table's code makes of the test's given rows: ``rows`` (and ``rejects``)."""
    if test.table.layer == "silver":
        return _silver(client, catalog, test)
    return {"rows": _gold(client, catalog, test).to_pylist()}


def run_silver(client: Client, catalog: Catalog, test: UnitTest) -> Outcome:
    outputs = _silver(client, catalog, test)
    found = [compare("rows", test.rows, outputs["rows"])]
    if test.rejects is not None:
        found.append(compare("rejects", test.rejects, outputs["rejects"]))
    return Outcome(test, [m for m in found if m], ("chdb",))


def _postgres_rows(pg: psycopg.Connection, table: SqlTable, computed: pa.Table) -> list[Row]:
    """The computed rows as Postgres holds them: loaded the way a publish stages them."""
    from psycopg import sql

    from onering_assets.gold import publish
    from onering_assets.gold.assets import LIQUIBASE_DIR
    from onering_assets.gold.ddl import apply_changelogs

    with pg.transaction(force_rollback=True):  # the changesets too: nothing is kept
        apply_changelogs(pg, LIQUIBASE_DIR)
        publish.stage(pg, table, computed)
        result = pg.execute(sql.SQL("SELECT * FROM {}").format(publish.stage_name(table)))
        columns = [d.name for d in result.description or ()]
        return [dict(zip(columns, r, strict=True)) for r in result.fetchall()]


def run_gold(
    client: Client, catalog: Catalog, test: UnitTest, pg: psycopg.Connection | None
) -> Outcome:
    computed = _gold(client, catalog, test)
    produced = set(computed.column_names)  # Postgres's stage fills the others with null
    found = [compare("rows (chDB)", test.rows, computed.to_pylist(), produced)]
    engines: tuple[str, ...] = ("chdb",)
    if pg is not None:
        loaded = _postgres_rows(pg, test.table, computed)
        found.append(compare("rows (Postgres)", test.rows, loaded, produced))
        engines = ("chdb", "postgres")
    return Outcome(test, [m for m in found if m], engines)


@contextmanager
def scratch_clickhouse(folder: Path) -> Iterator[Client]:
    """A chDB of its own in ``folder`` (never the project's Silver)."""
    from onering_assets.resources.clickhouse import ClickHouseResource

    resource = ClickHouseResource(dsn=f"chdb://{folder / 'clickhouse'}")
    try:
        yield resource.get_client()
    finally:
        resource.close()


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run_tests(
    tests: list[UnitTest], catalog: Catalog, client: Client, pg: psycopg.Connection | None
) -> Iterator[Outcome]:
    """Each test's outcome; a test the engines cannot run is an outcome with its error."""
    for test in tests:
        try:
            if test.table.layer == "silver":
                yield run_silver(client, catalog, test)
            else:
                yield run_gold(client, catalog, test, pg)
        except Exception as err:  # the declared SQL or a given value: reported, not raised
            yield Outcome(test, error=first_line(err))
