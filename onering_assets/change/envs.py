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

import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onering_assets import journal
from onering_assets.catalog import load_catalog
from onering_assets.change import state
from onering_assets.errors import ConfigError
from onering_assets.namespaces import SEPARATOR, check_name
from onering_assets.silver.plan import DATABASE, STAGING_NAME, quote

if TYPE_CHECKING:
    import psycopg
    from clickhouse_connect.driver.client import Client

    from onering_assets.resources.locks import Locks

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


def _share_silver(client: Client, env: str) -> tuple[int, int]:
    """Every published Silver table re-created in the environment, its parts hard-linked.

    ``CREATE TABLE … CLONE AS`` is ``CREATE TABLE … AS`` plus ``ATTACH PARTITION … FROM`` of
    every partition, in one statement per table.
    """
    database = silver_database(env)
    client.command(f"CREATE DATABASE {database}")
    tables = published_tables(client)
    for name in tables:
        client.command(f"CREATE TABLE {database}.{quote(name)} CLONE AS {DATABASE}.{quote(name)}")
    parts = client.query(
        "SELECT count() FROM (SELECT DISTINCT table, partition_id FROM system.parts "
        "WHERE database = {db:String} AND active)",
        parameters={"db": database},
    ).result_rows[0][0]
    return len(tables), int(parts)


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


def create(client: Client, conn: psycopg.Connection | None, env: str) -> Created:
    """Create ``env`` from production without copying its data (see the module doc)."""
    started = time.perf_counter()
    if env in environments(client):
        raise ConfigError(f"Environment {env!r} exists: `onering env drop {env}` first.")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Gold's copies (Postgres) run while ClickHouse re-creates Silver's tables: both
            # release the GIL, and creation takes the longer of the two instead of the sum.
            gold = pool.submit(_share_gold, conn, env) if conn is not None else None
            try:
                tables, parts = _share_silver(client, env)
                _copy_records(client, env)
            finally:
                if gold is not None:
                    wait([gold])  # before a drop, which uses the same connection
            marts = gold.result() if gold is not None else 0
    except BaseException:
        drop(client, conn, env)
        raise
    return Created(env, tables, parts, marts, time.perf_counter() - started)


def base(env: str) -> str:
    """Under which name the records of what production had when ``env`` branched are kept.

    ``__`` cannot be part of an environment's name, so this never names one.
    """
    return f"{env}{SEPARATOR}base"


def _copy_records(client: Client, env: str) -> None:
    state.copy_records(client, state.PROD, [env, base(env)])


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
    state.forget_env(client, base(env))


# -- promotion -----------------------------------------------------------------------------
PROMOTE = "promote"  # the journal layer of a promotion


@dataclass(frozen=True)
class _FromEnv:
    """What ``plan.swap_statements`` swaps: production's table from the environment's."""

    table: str
    env: str

    @property
    def target(self) -> str:
        return f"{DATABASE}.{quote(self.table)}"

    @property
    def rejects(self) -> str:
        return f"{DATABASE}.{quote(self.table + '_rejects')}"

    @property
    def stage(self) -> str:
        return f"{silver_database(self.env)}.{quote(self.table)}"

    @property
    def rejects_stage(self) -> str:
        return f"{silver_database(self.env)}.{quote(self.table + '_rejects')}"


def differences(client: Client, env: str) -> dict[str, list[str]]:
    """Per table, the partitions the environment built differently from production."""
    prod, built = state.deployed(client), state.deployed(client, env)
    found: dict[str, list[str]] = {}
    for key, parts in built.items():
        for partition, mine in sorted(parts.items()):
            theirs = prod.get(key, {}).get(partition)
            if theirs is None or (theirs.source, theirs.inputs) != (mine.source, mine.inputs):
                found.setdefault(key, []).append(partition)
    return found


@dataclass(frozen=True)
class Summary:
    env: str
    created: str  # when its tables were created, UTC to the minute
    differs: dict[str, list[str]]  # what it built differently from production


def summaries(client: Client) -> list[Summary]:
    """Every environment: when it was created and what it built that production has not."""
    found = []
    for env in environments(client):
        created = client.query(
            "SELECT formatDateTime(min(metadata_modification_time), '%Y-%m-%d %H:%i', 'UTC') "
            "FROM system.tables WHERE database = {db:String}",
            parameters={"db": silver_database(env)},
        ).result_rows
        found.append(Summary(env, str(created[0][0]) if created else "", differences(client, env)))
    return found


def _promoter(client: Client, conn: psycopg.Connection | None) -> journal.Apply:
    """Swap an entry's tables into production; every step can be run again (roll forward)."""
    from psycopg import sql

    from onering_assets.gold.publish import window_literal
    from onering_assets.silver.plan import swap_statements

    def apply(entry: journal.Entry) -> None:
        env, tables = entry.payload["env"], entry.payload["tables"]
        for key, parts in sorted(tables.items()):
            layer, name = key.split("/", 1)
            if layer == "silver":
                months = None if parts == [state.WHOLE] else parts
                for statement, settings in swap_statements(months, _FromEnv(name, env)):
                    client.command(statement, settings=settings)
        journal.fault("env.promote.after_silver")
        marts = {k.split("/", 1)[1]: p for k, p in tables.items() if k.startswith("gold/")}
        if marts and conn is None:
            raise ConfigError("Gold's Postgres is not there: cannot promote the marts.")
        if conn is not None and marts:
            catalog = load_catalog()
            with conn.transaction():
                for name, parts in sorted(marts.items()):
                    table = catalog.sql_table("gold", name)
                    window = window_literal(table, None if parts == [state.WHOLE] else parts)
                    prod, mine = (
                        sql.Identifier("gold", name),
                        sql.Identifier(gold_schema(env), name),
                    )
                    conn.execute(sql.SQL("DELETE FROM {p}").format(p=prod) + window)
                    conn.execute(
                        sql.SQL("INSERT INTO {p} SELECT * FROM {m}").format(p=prod, m=mine) + window
                    )
            conn.commit()  # durable before the records, and before the journal says done
        built = state.deployed(client, env)
        promoted = [built[key][p] for key, parts in tables.items() for p in parts]
        # Production now branches from here: a later promotion of the same partitions
        # compares with these.
        state.insert(
            client, state.rows_of(promoted, state.PROD) + state.rows_of(promoted, base(env))
        )

    return apply


def finish_promotions(client: Client, conn: psycopg.Connection | None) -> list[journal.Entry]:
    """Finish promotions a crash stopped half-way (before anything else reads or promotes)."""
    return journal.recover(
        journal.ClickHouseJournal(client), _promoter(client, conn), lambda e: None, layer=PROMOTE
    )


def _columns(client: Client, conn: psycopg.Connection | None, key: str, env: str) -> tuple:
    """A table's (name, type) columns in production and in ``env``, in order."""
    layer, name = key.split("/", 1)
    if layer == "silver":
        query = (
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} ORDER BY position"
        )
        return tuple(
            tuple(client.query(query, parameters={"db": db, "t": t}).result_rows)
            for db in (DATABASE, silver_database(env))
            for t in (name, f"{name}_rejects")
        )
    if conn is None:
        return ()
    query = (
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position"
    )
    return tuple(
        tuple(conn.execute(query, (schema, name)).fetchall())  # type: ignore[arg-type]
        for schema in ("gold", gold_schema(env))
    )


def _moved_since(client: Client, env: str, changed: dict[str, list[str]]) -> list[str]:
    """The partitions to promote that production re-published after ``env`` branched.

    Promoting them would replace production's newer rows with what ``env`` built from
    older data. An environment made before its branch point was kept counts as branched
    from nothing: every partition production has is newer (re-create it).
    """
    branched = state.deployed(client, base(env))  # none: production had nothing then
    prod = state.deployed(client)
    moved = []
    for key, parts in sorted(changed.items()):
        for p in parts:
            then, now = branched.get(key, {}).get(p), prod.get(key, {}).get(p)
            if (then and then.run_id) != (now and now.run_id):
                moved.append(f"{key} {p or '(the whole table)'}")
    return moved


def _migrate_production(
    client: Client, conn: psycopg.Connection | None, env: str, changed: dict, locks: Locks | None
) -> list[str]:
    """Migrate production first when ``env`` ran changesets it has pending.

    As a production build would apply them; then each table to promote must have the
    environment's columns.
    """
    from onering_assets.change import env_ddl

    ran = env_ddl.applied(client, conn, env)
    if ran:
        from onering_assets.gold.ddl import apply_changelogs
        from onering_assets.settings import PLATFORM_DIR
        from onering_assets.silver import ddl

        if locks is None or conn is None:
            raise ConfigError(f"{env} ran changesets ({', '.join(ran)}): promote it from the CLI.")
        apply_changelogs(conn, PLATFORM_DIR / "versioning" / "liquibase")
        conn.commit()  # before the journal entry: a roll-forward does not migrate again
        ddl.apply_changelogs(client, locks)
    for key in sorted(changed):
        shapes = _columns(client, conn, key, env)
        half = len(shapes) // 2
        if shapes[:half] != shapes[half:]:
            raise ConfigError(
                f"{key}: its columns in {env} differ from production's, and no pending "
                f"changeset explains it (was a changeset edited or run by hand?). Nothing was "
                f"promoted; `onering env drop {env}` and build it again."
            )
    return ran


def promote(
    client: Client, conn: psycopg.Connection | None, env: str, locks: Locks | None = None
) -> dict[str, list[str]]:
    """Make what ``env`` built production: all its tables' partitions, or none of them.

    Production is first migrated when the environment ran changesets production has
    pending (``env_ddl``), and every table to promote must then have the environment's
    columns. One journal entry names every (table, partition); it is written before the
    first swap, so a promotion killed half-way is finished by ``finish_promotions`` from
    the environment's tables, which it leaves in place.
    """
    if env not in environments(client):
        raise ConfigError(f"No environment {env!r}: see `onering env list`.")
    entries = finish_promotions(client, conn)
    finished = {k: p for e in entries if e.table == env for k, p in e.payload["tables"].items()}
    changed = differences(client, env)
    if changed:
        moved = _moved_since(client, env, changed)
        if moved:
            raise ConfigError(
                f"Production re-published {', '.join(moved)} after {env} was created: "
                f"promoting would replace it with what {env} built from older data. Nothing "
                f"was promoted. Build the change again on today's production: `onering env "
                f"drop {env}`, then `onering apply --env {env}`."
            )
        _migrate_production(client, conn, env, changed, locks)
        run = f"{env}{uuid.uuid4().hex[:12]}"
        entry = journal.Entry(run, PROMOTE, env, {"env": env, "tables": changed})
        journal.publish(
            journal.ClickHouseJournal(client), entry, _promoter(client, conn), lambda e: None
        )
    return {**finished, **changed}
