"""Zero-copy environments: production's Silver and Gold under another name, sharing the data.

``create`` makes ``silver__<env>`` in ClickHouse with every published Silver table (and its
rejects) re-created from production's parts by ``CREATE TABLE … CLONE AS`` (an ``ATTACH
PARTITION … FROM`` of every partition), which hard-links the parts instead of copying
them, and ``gold__<env>`` in Postgres with a copy of each production mart (marts are
aggregates: hundreds of rows; a copy keeps the environment one consistent snapshot, where
a view would follow production's later publishes while its Silver does not); it records the
environment as deployed from what production was built from. Production is only read: its
tables, parts and rows stay as they were. ``drop`` removes the namespaces and the records,
and nothing of production.

``onering apply --env ENV`` builds changed tables into it (``namespaces.py``); ``promote``
makes what it built production, all or nothing (one journal entry, rolled forward).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from onering_assets.change import state
from onering_assets.errors import ConfigError
from onering_assets.namespaces import COMPLETE, SEPARATOR, check_name
from onering_assets.silver.plan import DATABASE, STAGING_NAME, quote

if TYPE_CHECKING:
    import psycopg
    from clickhouse_connect.driver.client import Client

    from onering_assets.resources.clickhouse import Statements


MART_COPY = ("CREATE TABLE {m} (LIKE {p} INCLUDING ALL)", "INSERT INTO {m} SELECT * FROM {p}")
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


Work = Callable[["Statements"], None]  # one statement's worth of creating an environment


def _balanced(work: list[tuple[int, Work]], load: list[int]) -> list[list[Work]]:
    """``work`` (cost, job) in groups of about equal cost, each from its ``load``.

    The costliest job is placed first, each on the group that costs least so far.
    """
    found: list[list[Work]] = [[] for _ in load]
    load = list(load)
    for cost, job in sorted(work, key=lambda w: -w[0]):
        least = load.index(min(load))
        found[least].append(job)
        load[least] += cost
    return found


def _share_silver(clients: Sequence[Statements], env: str) -> tuple[int, int]:
    """Silver's published tables re-created in ``env`` (parts hard-linked), and the records.

    ``CREATE TABLE … CLONE AS`` is ``CREATE TABLE … AS`` plus ``ATTACH PARTITION … FROM`` of
    every partition, in one statement per table; production's records are copied as the
    environment's (by the first client, a full one). Each connection runs its share of the
    statements at once: ClickHouse's DDL and part loading, not I/O, is what they cost
    (about 4 ms a table and 1.5–3.5 ms a part at 10x).
    """
    client, database = cast("Client", clients[0]), silver_database(env)
    client.command(f"CREATE DATABASE {database}")
    tables = published_tables(client)
    found = client.query(
        "SELECT table, countIf(part_type = 'Wide'), countIf(part_type != 'Wide'), "
        "uniqExact(partition_id) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table",
        parameters={"db": DATABASE},
    ).result_rows
    # What each statement costs, in tenths of a ms measured at 10x: a table's DDL 40, then
    # loading each part: a wide one (a file per column) 35, a compact one 15; the records 130.
    parts = {str(r[0]): 35 * int(r[1]) + 15 * int(r[2]) for r in found}
    partitions = {str(r[0]): int(r[3]) for r in found}

    def clone(name: str) -> Work:
        statement = f"CREATE TABLE {database}.{quote(name)} CLONE AS {DATABASE}.{quote(name)}"
        return lambda c: c.command(statement)

    work = [(40 + parts.get(n, 0), clone(n)) for n in tables]
    groups = _balanced(work, [130] + [0] * (len(clients) - 1))
    groups[0].insert(0, lambda c: _copy_records(client, env))
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        # the first failure is raised once every connection has stopped
        list(
            pool.map(lambda job: [run(job[0]) for run in job[1]], zip(clients, groups, strict=True))
        )
    return len(tables), sum(partitions.get(t, 0) for t in tables)


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
            mine, prod = sql.Identifier(schema, mart), sql.Identifier("gold", mart)
            conn.execute(
                sql.SQL("CREATE TABLE {m} (LIKE {p} INCLUDING ALL)").format(m=mine, p=prod)
            )
            conn.execute(sql.SQL("INSERT INTO {m} SELECT * FROM {p}").format(m=mine, p=prod))
        if _role_exists(conn, "onering_reader"):  # `onering sql` reads as this role
            for grant in READER_GRANTS:
                conn.execute(sql.SQL(grant).format(s=sql.Identifier(schema)))
    return len(marts)


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return found is not None


def create(
    client: Client,
    conn: psycopg.Connection | None,
    env: str,
    another: Callable[[], Statements] | None = None,
) -> Created:
    """Create ``env`` from production without copying its data (see the module doc).

    ``another`` opens one more connection to the store (``ClickHouseResource.
    another_connection``): Silver's tables are then re-created by both at once (the
    caller's client holds the store; the other is closed here).
    """
    started = time.perf_counter()
    if env in environments(client):
        stopped = " (its creation was stopped)" if env in incomplete(client) else ""
        raise ConfigError(f"Environment {env!r} exists{stopped}: `onering env drop {env}` first.")
    if leftovers(client, conn, env):  # of a drop killed half-way (Silver's database goes last)
        drop(client, conn, env)
    with contextlib.ExitStack() as stack:
        clients: list[Statements] = [client]
        if another is not None:
            extra = another()
            stack.callback(extra.close)
            clients.append(extra)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                # Gold's copies (Postgres) run while ClickHouse re-creates Silver's tables:
                # creation takes the longer of the two instead of the sum.
                gold = pool.submit(_share_gold, conn, env) if conn is not None else None
                try:
                    tables, parts = _share_silver(clients, env)
                finally:
                    if gold is not None:
                        wait([gold])  # before a drop, which uses the same connection
                marts = gold.result() if gold is not None else 0
            if conn is not None:
                conn.commit()  # Gold's copies are durable before the environment is complete
            # Its existence is the mark (no rows: Memory keeps only the definition on disk).
            client.command(
                f"CREATE TABLE {silver_database(env)}.{COMPLETE} (x UInt8) ENGINE = Memory"
            )
        except BaseException:
            if conn is not None:
                conn.rollback()
            drop(client, conn, env)
            raise
    return Created(env, tables, parts, marts, time.perf_counter() - started)


def incomplete(client: Client) -> list[str]:
    """Environments whose creation was stopped (a kill) before it made ``_complete``.

    Nothing builds into one, plans for it, promotes it or lists it as usable; ``onering env
    drop`` removes it.
    """
    rows = client.query(
        "SELECT name FROM system.databases WHERE startsWith(name, {p:String}) AND name NOT IN "
        "(SELECT database FROM system.tables WHERE name = {t:String}) ORDER BY name",
        parameters={"p": f"{DATABASE}{SEPARATOR}", "t": COMPLETE},
    ).result_rows
    return [str(r[0])[len(DATABASE) + len(SEPARATOR) :] for r in rows]


def check_complete(client: Client, env: str) -> None:
    """Refuse an environment whose creation was stopped."""
    if env in incomplete(client):
        raise ConfigError(
            f"Environment {env!r} is incomplete: its creation was stopped. `onering env drop "
            f"{env}`, then create it again."
        )


def base(env: str) -> str:
    """Under which name the records of what production had when ``env`` branched are kept.

    ``__`` cannot be part of an environment's name, so this never names one.
    """
    return f"{env}{SEPARATOR}base"


def _copy_records(client: Client, env: str) -> None:
    state.copy_records(client, state.PROD, [env, base(env)])


def drop(client: Client, conn: psycopg.Connection | None, env: str) -> None:
    """Remove ``env``'s records and namespaces; production is not touched.

    The Silver database, by which the environment exists, goes last and Gold's schema is
    committed gone before it: a drop killed half-way leaves an environment that is still
    listed, and the next ``drop`` (or ``create``) finishes it.
    """
    from psycopg import sql

    state.forget_env(client, env)
    state.forget_env(client, base(env))
    if conn is not None:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(gold_schema(env)))
        )
        conn.commit()
    client.command(f"DROP DATABASE IF EXISTS {silver_database(env)} SYNC")


def leftovers(client: Client, conn: psycopg.Connection | None, env: str) -> list[str]:
    """What is left of ``env`` outside its Silver database (a drop killed half-way)."""
    found = []
    if conn is not None:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
            (gold_schema(env),),
        ).fetchone()
        if row and row[0]:
            found.append(f"schema {gold_schema(env)}")
    if state.deployed(client, env) or state.deployed(client, base(env)):
        found.append("its deployment records")
    return found


def differences(client: Client, env: str) -> dict[str, list[str]]:
    """Per table, the partitions the environment built or recorded unlike production.

    A partition counts when its record differs both from production's now and from
    production's when ``env`` branched (``base``; moved on by each promotion): what
    production re-published since, which the environment never touched (the feature
    views), is not the environment's change, nor is a change production also built.
    """
    prod, built = state.deployed(client), state.deployed(client, env)
    branched = state.deployed(client, base(env))
    found: dict[str, list[str]] = {}
    for key, parts in built.items():
        for partition, mine in sorted(parts.items()):
            if _differs(mine, prod.get(key, {}).get(partition)) and _differs(
                mine, branched.get(key, {}).get(partition)
            ):
                found.setdefault(key, []).append(partition)
    return found


def _differs(mine: state.Deployed, theirs: state.Deployed | None) -> bool:
    return theirs is None or (theirs.source, theirs.inputs) != (mine.source, mine.inputs)


@dataclass(frozen=True)
class Summary:
    env: str
    created: str  # when it was made complete, UTC to the minute ("" when it was not)
    differs: dict[str, list[str]]  # what it built or recorded since created (``differences``)
    complete: bool = True  # False: its creation was stopped (drop it)


def summaries(client: Client) -> list[Summary]:
    """Every environment: when it was created and what it built or recorded since."""
    found = []
    stopped = set(incomplete(client))
    for env in environments(client):
        created = client.query(
            "SELECT formatDateTime(metadata_modification_time, '%Y-%m-%d %H:%i', 'UTC') "
            "FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": silver_database(env), "t": COMPLETE},
        ).result_rows
        when = str(created[0][0]) if created else ""
        found.append(Summary(env, when, differences(client, env), env not in stopped))
    return found
