"""Zero-copy environments: production's Silver and Gold under another name, sharing the data.

``create`` makes ``silver__<env>`` in ClickHouse with every published Silver table (and its
rejects) re-created from production's parts by ``ATTACH PARTITION … FROM``, which
hard-links the parts instead of copying them, and ``gold__<env>`` in Postgres with a view
over each production mart; it records the environment as deployed from what production was
built from. Production is only read: its tables, parts and rows stay as they were. ``drop``
removes the namespaces and the records, and nothing of production.

Not yet: building changed tables into an environment (``onering apply --env``), promoting
it, and exporting Airflow DAGs for it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onering_assets.change import state
from onering_assets.errors import ConfigError
from onering_assets.silver.plan import DATABASE, STAGING_NAME, quote

if TYPE_CHECKING:
    import psycopg
    from clickhouse_connect.driver.client import Client

NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
SEPARATOR = "__"
READER_GRANTS = (
    "GRANT USAGE ON SCHEMA {s} TO onering_reader",
    "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO onering_reader",
)


@dataclass(frozen=True)
class Created:
    env: str
    tables: int
    parts: int
    marts: int
    seconds: float


def check_name(env: str) -> str:
    if not NAME.match(env) or SEPARATOR in env or env == state.PROD:
        raise ConfigError(
            f"{env!r} is not an environment name: lower-case letters, digits and single "
            f"underscores, starting with a letter, at most 31 characters, not {state.PROD!r}."
        )
    return env


def silver_database(env: str) -> str:
    return f"{DATABASE}{SEPARATOR}{check_name(env)}"


def gold_schema(env: str) -> str:
    return f"gold{SEPARATOR}{check_name(env)}"


def environments(client: Client) -> list[str]:
    """The environments that exist in the store, by their Silver database."""
    rows = client.query(
        "SELECT name FROM system.databases WHERE startsWith(name, {p:String}) ORDER BY name",
        parameters={"p": f"{DATABASE}{SEPARATOR}"},
    ).result_rows
    return [str(r[0])[len(DATABASE) + len(SEPARATOR) :] for r in rows]


def published_tables(client: Client) -> list[str]:
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} "
        "AND engine LIKE '%MergeTree' ORDER BY name",
        parameters={"db": DATABASE},
    ).result_rows
    return [str(r[0]) for r in rows if not STAGING_NAME.search(str(r[0]))]


def _share_silver(client: Client, env: str) -> tuple[int, int]:
    database = silver_database(env)
    client.command(f"CREATE DATABASE {database}")
    tables = parts = 0
    for name in published_tables(client):
        source, copy = f"{DATABASE}.{quote(name)}", f"{database}.{quote(name)}"
        client.command(f"CREATE TABLE {copy} AS {source}")
        ids = client.query(
            "SELECT DISTINCT partition_id FROM system.parts WHERE database = {db:String} "
            "AND table = {t:String} AND active ORDER BY partition_id",
            parameters={"db": DATABASE, "t": name},
        ).result_rows
        for (partition_id,) in ids:
            client.command(
                f"ALTER TABLE {copy} ATTACH PARTITION ID {{p:String}} FROM {source}",
                parameters={"p": str(partition_id)},
            )
        tables, parts = tables + 1, parts + len(ids)
    return tables, parts


def _share_gold(conn: psycopg.Connection, env: str) -> int:
    from psycopg import sql

    schema = gold_schema(env)
    marts = [
        str(r[0])
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold' "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    ]
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for mart in marts:
            conn.execute(
                sql.SQL("CREATE VIEW {v} AS SELECT * FROM {t}").format(
                    v=sql.Identifier(schema, mart), t=sql.Identifier("gold", mart)
                )
            )
        if _role_exists(conn, "onering_reader"):  # `onering sql` reads as this role
            for grant in READER_GRANTS:
                conn.execute(sql.SQL(grant).format(s=sql.Identifier(schema)))
    return len(marts)


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return found is not None


def create(client: Client, conn: psycopg.Connection | None, env: str) -> Created:
    """Create ``env`` from production without copying its data (see the module doc)."""
    started = time.perf_counter()
    if env in environments(client):
        raise ConfigError(f"Environment {env!r} exists: `onering env drop {env}` first.")
    try:
        tables, parts = _share_silver(client, env)
        marts = _share_gold(conn, env) if conn is not None else 0
        _copy_records(client, env)
    except BaseException:
        drop(client, conn, env)
        raise
    return Created(env, tables, parts, marts, time.perf_counter() - started)


def _copy_records(client: Client, env: str) -> None:
    rows = [
        state.row(env, d.key, d.partition, d.source, json.dumps(d.inputs), d.run_id)
        for parts in state.deployed(client).values()
        for d in parts.values()
    ]
    state.insert(client, rows)


def drop(client: Client, conn: psycopg.Connection | None, env: str) -> None:
    """Remove ``env``'s namespaces and records; production is not touched."""
    from psycopg import sql

    client.command(f"DROP DATABASE IF EXISTS {silver_database(env)} SYNC")
    if conn is not None:
        with conn.transaction():
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(gold_schema(env)))
            )
    state.forget_env(client, env)
