"""Checks alone (``onering check``) write nothing to the data stores.

Each store is snapshotted before and after a checks-only run (``runner.execute`` with no
assets, as ``onering check`` calls it): the lake file by file (path, size, mtime, sha256);
ClickHouse by its catalog, the newest block of each partition and a checksum of every
table; Postgres by its
relations and their file nodes, insert/delete counters, every row of every Gold table with
its ``xmin`` (a rewritten row gets a new one) and the Liquibase changelog. Dagster's own
run records are not a data store and are allowed to grow.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from psycopg import sql

from onering_assets.definitions import build_definitions
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.runner import check_keys, execute
from onering_assets.settings import Settings
from onering_assets.summary import RunSummary
from tests.conftest import MEDALLION, layer_keys, run, settings_for

pytestmark = pytest.mark.slow
NOT_PUBLISHED = "has not been materialized yet"


def check_all(settings: Settings, instance: dg.DagsterInstance, layer: str = "") -> RunSummary:
    """What `onering check` runs: every check (of one layer), no asset."""
    defs = build_definitions(settings)
    keys = {
        k
        for k in defs.resolve_asset_graph().materializable_asset_keys
        if not layer or k.path[0] == layer
    }
    return execute(defs, instance, assets=set(), checks=check_keys(defs, keys), progress=False)


def lake_files(settings: Settings) -> list[tuple[str, int, int, str]]:
    root = settings.lake_dir
    return sorted(
        (
            str(p.relative_to(root)),
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in root.rglob("*")
        if p.is_file()
    )


def clickhouse_state(settings: Settings) -> dict[str, Any]:
    user = "database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')"
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:

        def rows(query: str) -> list[tuple]:
            return [tuple(r) for r in client.query(query).result_rows]

        tables = rows(
            "SELECT database, name, engine, toString(uuid), metadata_modification_time"
            f" FROM system.tables WHERE {user} ORDER BY 1, 2"
        )
        content = {
            f"{db}.{name}": rows(f"SELECT count(), groupBitXor(cityHash64(*)) FROM `{db}`.`{name}`")
            for db, name, engine, *_ in tables
            if "MergeTree" in engine or engine in ("Memory", "Log", "TinyLog")
        }
        return {
            "tables": tables,
            "columns": rows(
                f"SELECT database, table, name, type, position FROM system.columns WHERE {user}"
                " ORDER BY 1, 2, 5"
            ),
            # An insert or a partition swap adds parts with new block numbers; a background
            # merge only combines parts, so it keeps the highest block number (and the content).
            "blocks": rows(
                "SELECT database, table, partition_id, max(max_block_number) FROM system.parts"
                f" WHERE active AND {user} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ),
            "content": content,
        }


def postgres_state(settings: Settings) -> dict[str, Any]:
    pg = PostgresResource(embedded_dir=str(settings.postgres_dir))
    with pg.connect(autocommit=True) as conn:

        def rows(query: sql.Composable | str) -> list[tuple]:
            return sorted(
                (tuple(r) for r in conn.execute(query).fetchall()),  # type: ignore[arg-type]
                key=repr,
            )

        relations = rows(
            "SELECT n.nspname, c.relname, c.relkind, c.relfilenode FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        )
        tables = [
            (schema, name)
            for schema, name, kind, _ in relations
            if kind == "r" and schema in ("gold", "public")
        ]
        return {
            "schemas": rows("SELECT nspname FROM pg_namespace"),
            "roles": rows("SELECT rolname FROM pg_roles"),
            "relations": relations,
            # Creating or dropping anything (a temporary table too) inserts or deletes
            # catalog rows; writing a table counts in its own row.
            "counters": rows(
                "SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_del"
                " FROM pg_stat_all_tables"
                " WHERE schemaname IN ('gold', 'public')"
                " OR relname IN ('pg_class', 'pg_attribute', 'pg_type', 'pg_namespace')"
            ),
            "rows": {
                f"{schema}.{name}": rows(
                    sql.SQL("SELECT xmin::text, t.* FROM {} AS t").format(
                        sql.Identifier(schema, name)
                    )
                )
                for schema, name in tables
            },
        }


def stable_postgres_state(settings: Settings) -> dict[str, Any]:
    """Postgres counters are flushed by each backend as it ends: wait until they settle."""
    state = postgres_state(settings)
    for _ in range(20):
        time.sleep(0.5)
        again = postgres_state(settings)
        if again == state:
            return state
        state = again
    return state


def snapshot(settings: Settings) -> dict[str, Any]:
    return {
        "lake": lake_files(settings),
        "clickhouse": clickhouse_state(settings),
        "postgres": stable_postgres_state(settings),
    }


NO_BATCH = (
    "stream/flights_events",
    "dead_letters",
    True,
    "no batch consumed yet (`onering stream replay` first)",
)


def stream_checks(summary: RunSummary) -> list[tuple[str, str, bool, str]]:
    return [c for c in summary.checks if c[0] == "stream/flights_events"]


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_checks_on_a_materialized_state_write_nothing(
    tmp_path_factory: pytest.TempPathFactory, make_source, instance: dg.DagsterInstance
) -> None:
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source())
    assert run(settings, instance=instance).success
    before = snapshot(settings)
    assert before["lake"] and before["clickhouse"]["content"] and before["postgres"]["rows"]

    summary = check_all(settings, instance)

    medallion = [c for c in summary.checks if c[0].split("/")[0] in MEDALLION]
    assert medallion and all(passed for _, _, passed, _ in medallion), summary.failures
    # The feature views, the model, the Flink results and the Airbyte streams were never
    # built on this state: their checks say so.
    ml = [
        c
        for c in summary.checks
        if c[0].split("/")[0] not in MEDALLION and c[0] != "stream/flights_events"
    ]
    assert ml and all(not passed and NOT_PUBLISHED in d for _, _, passed, d in ml), ml
    assert stream_checks(summary) == [NO_BATCH]
    assert not summary.rows
    after = snapshot(settings)
    for store in ("lake", "clickhouse", "postgres"):
        assert after[store] == before[store], store


@pytest.mark.parametrize("layer", ["gold", ""], ids=["gold", "every-layer"])
def test_checks_on_a_fresh_state_create_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    make_source,
    instance: dg.DagsterInstance,
    layer: str,
) -> None:
    """Nothing was ever materialized: checks fail as not published and create no store."""
    state = tmp_path_factory.mktemp("fresh")
    settings = settings_for(state, make_source())

    summary = check_all(settings, instance, layer=layer)

    assert everything_under(state) == []  # no lake, no chDB folder, no Postgres cluster
    gold = [c for c in summary.checks if c[0].startswith("gold/")]
    assert gold and all(not passed and NOT_PUBLISHED in d for _, _, passed, d in gold)
    # Nothing consumed is nothing dead-lettered: the stream's one check passes and says why.
    assert stream_checks(summary) == ([NO_BATCH] if not layer else [])
    assert all(not passed for key, _, passed, _ in summary.checks if key != "stream/flights_events")


def test_gold_checks_do_not_migrate_a_database_without_gold(
    tmp_path_factory: pytest.TempPathFactory, make_source, instance: dg.DagsterInstance
) -> None:
    """Postgres is running but Gold was never built: checks report it, and create nothing."""
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source())
    upstream = layer_keys(settings, ("bronze", "silver"))
    assert run(settings, instance=instance, select=upstream).success
    PostgresResource(embedded_dir=str(settings.postgres_dir)).conninfo()  # an empty cluster
    before = snapshot(settings)
    assert ("gold",) not in before["postgres"]["schemas"]

    summary = check_all(settings, instance, layer="gold")

    assert summary.checks
    assert all(not passed and NOT_PUBLISHED in d for _, _, passed, d in summary.checks)
    after = snapshot(settings)
    assert ("gold",) not in after["postgres"]["schemas"]
    assert not any(r[1] == "databasechangelog" for r in after["postgres"]["relations"])
    for store in ("lake", "clickhouse", "postgres"):
        assert after[store] == before[store], store
