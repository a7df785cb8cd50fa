"""Pipeline bench, the engine floor: the fewest steps an engineer would hand-write with the
same engines for the same result, with no orchestration and no checks.

- Bronze: pyarrow ``read_csv`` of each landed file, every column a string (``NA`` and empty
  as null, as Bronze reads them); the ingestion columns ``_batch_id``, ``_ingested_at``,
  ``_source``, ``_row`` (the physical line) and ``_partition`` (``YYYY-MM`` from the
  landed ``year``/``month``) added with pyarrow compute; one zstd Parquet file per month
  (flights, weather) or one file (the other tables) in a lake folder of the state folder.
- Silver: per table, the declared ``CREATE`` statements (if new) and a ``TRUNCATE``; then
  the typed, de-duplicating SELECT in chDB computed once into a Memory table (the declared
  SELECT, ranges applied, over ``file('<lake glob>', Parquet)``, with the build's rule:
  ``row_number()`` over the key, latest ingestion, then the row landed last) and two
  ``INSERT … SELECT`` from it, into the MergeTree table and into its rejects table; at
  once, or month by month for a monthly table of over 1 M rows, whichever is faster
  (``silver_statements``). No staging, no audit, no publication. One ``INSERT`` into a
  ``Null`` table split by two materialized views was slower (flights at 1x: about 1.2 s
  against 0.9 s).
- Gold: each mart's SELECT in chDB, and a ``TRUNCATE`` + ``COPY`` of the result into the
  embedded Postgres tables the Gold changelog creates (applied once per process).

``worker_floor`` returns runs shaped like the raw worker's (per-asset seconds and rows,
peak RSS) and, after the last run, a fingerprint of every Silver and Gold table that the
Dagster worker also takes (``fingerprint``), so the report can say whether the floor
produced the same rows.
"""

from __future__ import annotations

import math
import time
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import current_rss_mb, peak_rss_mb
from bench.pipeline_scope import Stores

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from clickhouse_connect.driver.client import Client

    from onering_assets.catalog import BronzeTable, SqlTable

# Those of ClickHouseResource: declared SQL reads like standard SQL, month= is no column.
CH_SETTINGS = {"prefer_column_name_to_alias": 1, "use_hive_partitioning": 0}
# Above this many Bronze rows a monthly Silver table is built month by month (see
# ``silver_statements``).
PER_MONTH_ROWS = 1_000_000
# Silver's ingestion columns that differ between two ingestions of the same files.
PER_RUN = ("_batch_id", "_ingested_at")


def q(name: str) -> str:
    return f"`{name}`"


def literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Timer:
    """Per-asset seconds, rows and peak RSS of one floor run (raw's result shape)."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.setup = 0.0

    def step(self, key: str, started: float, rows: int) -> None:
        self.steps[key] = {
            "seconds": time.perf_counter() - started,
            "rows": rows,
            "checks": 0.0,
            "gx": 0.0,
            "rss": {**peak_rss_mb(), "current_mb": current_rss_mb()},
        }

    def as_dict(self, wall: float) -> dict[str, Any]:
        total = sum(s["seconds"] for s in self.steps.values()) + self.setup
        return {
            "seconds": total,
            "seconds_excl_gx": total,
            "gx_seconds": 0.0,
            "checks_seconds": 0.0,
            "setup_seconds": self.setup,
            "steps": self.steps,
            "rows": {k: s["rows"] for k, s in self.steps.items()},
            "wall_seconds": wall,
        }


# --------------------------------------------------------------------------- bronze


def read_strings(path: Path, names: list[str]) -> pa.Table:
    """The landed file, every column a string; pyarrow decompresses ``.gz`` itself."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from onering_assets.resources.source import NULL_VALUES

    source: Any = str(path)
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            source = pa.BufferReader(archive.read(archive.namelist()[0]))
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        null_values=NULL_VALUES,
        strings_can_be_null=True,
    )
    return pacsv.read_csv(source, convert_options=convert)


def stamped(data: pa.Table, batch_id: str, label: str, partitioned: bool) -> pa.Table:
    """The landed rows with the ingestion columns, built by pyarrow compute."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as compute

    pc: Any = compute  # generated at import time: type checkers cannot see its functions
    n = data.num_rows
    now = pa.scalar(datetime.now(UTC), pa.timestamp("ms", tz="UTC"))
    if partitioned:
        year = pc.utf8_trim_whitespace(data["year"])
        month = pc.utf8_lpad(pc.utf8_trim_whitespace(data["month"]), 2, "0")
        partition: Any = pc.binary_join_element_wise(year, month, "-")
    else:
        partition = pa.repeat(pa.scalar(""), n)
    return (
        data.append_column("_batch_id", pa.repeat(pa.scalar(batch_id), n))
        .append_column("_ingested_at", pa.repeat(now, n))
        .append_column("_source", pa.repeat(pa.scalar(label), n))
        .append_column("_row", pa.array(np.arange(2, n + 2, dtype=np.uint64)))  # header: line 1
        .append_column("_partition", partition)
    )


def floor_bronze(table: BronzeTable, stores: Stores, lake: Path, batch_id: str) -> int:
    """CSV -> strings + ingestion columns -> one zstd Parquet file per month (or one file)."""
    import pyarrow.compute as compute
    import pyarrow.parquet as pq

    pc: Any = compute
    path = stores.source.locate(table.name)
    data = read_strings(path, [c.name for c in table.columns])
    data = stamped(data, batch_id, stores.source.label(path), table.partitioned)
    folder = lake / "bronze" / table.name
    if not table.partitioned:
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, folder / "data.parquet", compression="zstd")
        return data.num_rows
    keys = data["_partition"]
    for month in pc.unique(keys).drop_null().to_pylist():
        (folder / f"month={month}").mkdir(parents=True, exist_ok=True)
        part = data.filter(pc.equal(keys, month))
        pq.write_table(part, folder / f"month={month}" / "data.parquet", compression="zstd")
    return data.num_rows


# --------------------------------------------------------------------------- silver


def lake_rows(folder: Path) -> int:
    """Rows in a Bronze table's Parquet files, from their footers."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(path).num_rows for path in folder.rglob("*.parquet"))


def silver_statements(table: SqlTable, lake: Path, *, per_month: bool | None = None) -> list[str]:
    """Create (if new) and empty the table and its rejects, then, for each month of a
    monthly table (``per_month``) or for the whole table, compute the typed, de-duplicated
    candidates once into a Memory table and insert them into each: plan.stage_statements'
    rule, straight into the final tables (no staging, no audit, no publication).

    The key holds the date, so duplicates never cross months and both give the same rows.
    Whichever is faster is used (``per_month=None``): month by month above
    ``PER_MONTH_ROWS`` (flights at 10x: 5.9 s and 1.1 GB peak RSS, against 7.2 s and 5 GB
    at once), at once below (each month's statements cost about 40 ms whatever their size:
    flights at 1x, 0.7 s at once against 1.7 s month by month).
    """
    from onering_assets.silver.plan import (
        REJECT_COLUMNS,
        create_statements,
        source_sql,
        table_columns,
    )

    target, rejects = f"silver.{q(table.name)}", f"silver.{q(table.name + '_rejects')}"
    candidates = f"silver.{q(table.name + '__floor_candidates')}"
    key = ", ".join(q(k) for k in table.key)
    cols = ", ".join(q(n) for n, _ in table_columns(table))
    reject_cols = ", ".join(q(n) for n, _ in REJECT_COLUMNS[:-1])
    statements = [
        *create_statements(table),
        f"TRUNCATE TABLE {target}",
        f"TRUNCATE TABLE {rejects}",
        f"DROP TABLE IF EXISTS {candidates}",
    ]
    folder = lake / "bronze" / table.upstream[0][1]
    if per_month is None:
        per_month = table.partitioned and lake_rows(folder) > PER_MONTH_ROWS
    if not table.partitioned:
        globs = ["data.parquet"]
    elif per_month:
        globs = [f"{month.name}/*.parquet" for month in sorted(folder.glob("month=*"))]
    else:
        globs = ["month=*/*.parquet"]
    for files in globs:
        sources = {
            name: f"file({literal(str(lake / 'bronze' / name / files))}, Parquet)"
            for _, name in table.upstream
        }
        statements += [
            f"CREATE TABLE {candidates} ENGINE = Memory AS "
            f"SELECT * EXCEPT (_rn), if(_reject_reason != '', _reject_reason, "
            f"if(_rn > 1, 'duplicate key', '')) AS _final_reason FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY _reject_reason = '', {key} "
            f"ORDER BY _ingested_at DESC, _row DESC, _raw) AS _rn FROM (\n"
            f"{source_sql(table, sources)}\n))",
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {candidates} "
            "WHERE _final_reason = ''",
            f"INSERT INTO {rejects} ({reject_cols}, `_reject_reason`) "
            f"SELECT {reject_cols}, _final_reason FROM {candidates} WHERE _final_reason != ''",
            f"DROP TABLE {candidates}",
        ]
    return statements


def floor_silver(client: Client, table: SqlTable, lake: Path) -> int:
    for statement in silver_statements(table, lake):
        client.command(statement)
    return int(client.query(f"SELECT count() FROM silver.{q(table.name)}").result_rows[0][0])


# --------------------------------------------------------------------------- gold


def nan_as_null(value: Any) -> Any:
    """NaN is stored as NULL, as Gold's stage stores it."""
    return None if isinstance(value, float) and math.isnan(value) else value


def floor_gold(client: Client, conn: psycopg.Connection, table: SqlTable) -> int:
    """The mart's SELECT in chDB, then TRUNCATE + COPY into its Postgres table."""
    from psycopg import sql

    result = client.query_arrow(table.sql, settings=table.settings)
    target = sql.Identifier("gold", table.name)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in result.column_names)
    with conn.transaction():
        conn.execute(sql.SQL("TRUNCATE {t}").format(t=target))
        with conn.cursor().copy(
            sql.SQL("COPY {t} ({c}) FROM STDIN").format(t=target, c=columns)
        ) as copy:
            for row in zip(*(c.to_pylist() for c in result.columns), strict=True):
                copy.write_row([nan_as_null(v) for v in row])
    return result.num_rows


# --------------------------------------------------------------------------- run


def open_chdb(stores: Stores) -> Client:
    import clickhouse_connect

    return clickhouse_connect.get_client(dsn=stores.ch.dsn, settings=CH_SETTINGS)


def floor_run(stores: Stores, lake: Path, conn: psycopg.Connection) -> dict[str, Any]:
    """One full Bronze -> Silver -> Gold run with the bare engines; returns its timings."""
    from onering_assets.catalog import load_catalog

    catalog = load_catalog()
    timer = Timer()
    batch_id = str(uuid.uuid4())
    started = time.perf_counter()
    for bronze in catalog.bronze:
        began = time.perf_counter()
        timer.step(f"bronze/{bronze.name}", began, floor_bronze(bronze, stores, lake, batch_id))
    began = time.perf_counter()
    client = open_chdb(stores)  # charged to the first Silver table, as in the raw run
    for silver in catalog.silver:
        timer.step(f"silver/{silver.name}", began, floor_silver(client, silver, lake))
        began = time.perf_counter()
    for gold in catalog.gold:
        began = time.perf_counter()
        timer.step(f"gold/{gold.name}", began, floor_gold(client, conn, gold))
    closing = time.perf_counter()
    client.close()
    timer.setup += time.perf_counter() - closing
    return timer.as_dict(time.perf_counter() - started)


def worker_floor(state_dir: Path, source_dir: Path | None, repeat: int) -> dict[str, Any]:
    """Warm up with one floor run, measure ``repeat`` floor runs, then fingerprint the result."""
    import psycopg

    from onering_assets.gold.assets import LIQUIBASE_DIR
    from onering_assets.gold.ddl import apply_changelogs

    stores = Stores.for_state(state_dir, source_dir)
    lake = state_dir / "floor-lake"
    started = time.perf_counter()
    with psycopg.connect(stores.pg.conninfo(), autocommit=True) as conn:
        apply_changelogs(conn, LIQUIBASE_DIR)  # the server's start and DDL, once per process
        setup = time.perf_counter() - started
        runs = [floor_run(stores, lake, conn) for _ in range(1 + repeat)]
        runs[0]["setup_seconds"] += setup
        runs[0]["seconds"] += setup
        runs[0]["seconds_excl_gx"] += setup
        rss = peak_rss_mb()
    return {"runs": runs, "rss": rss, "fingerprint": fingerprint(stores)}


# --------------------------------------------------------------------------- same result?


def fingerprint(stores: Stores) -> dict[str, Any]:
    """Rows and an order-free hash of every Silver table, its rejects and every Gold mart.

    Silver's is the sum of each row's cityHash64 without ``_batch_id`` and ``_ingested_at``
    (new at every ingestion); Gold's is the md5 of its rows as text, sorted. Taken after a
    worker's runs, off the clock.
    """
    import psycopg

    from onering_assets.catalog import load_catalog

    catalog, out = load_catalog(), {}
    client = open_chdb(stores)
    try:
        for table in catalog.silver:
            for name in (table.name, f"{table.name}_rejects"):
                row = client.query(
                    "SELECT count(), toString(sum(cityHash64("
                    f"* EXCEPT ({', '.join(PER_RUN)})))) FROM silver.{q(name)}"
                ).result_rows[0]
                out[f"silver/{name}"] = [int(row[0]), row[1]]
    finally:
        client.close()
    with psycopg.connect(stores.pg.conninfo()) as conn:
        for table in catalog.gold:
            found = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                f' FROM gold."{table.name}" AS t'  # type: ignore[arg-type]
            ).fetchone()
            out[f"gold/{table.name}"] = list(found) if found else None
    return out
