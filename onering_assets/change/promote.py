"""`onering env promote`: make what an environment built production, all or nothing.

One journal entry (layer ``promote``) holds every table and partition the environment built
or recorded since it branched (``envs.differences``); applying it swaps each Silver
partition in from ``silver__<env>`` and replaces each Gold window from ``gold__<env>`` in one
transaction, then records production as built from them. Every step can run again: a
promotion a crash stopped is finished by the next command that opens the stores
(``finish_promotions``).
Changesets the environment ran that production has not are applied to production first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from onering_assets import journal
from onering_assets.catalog import load_catalog
from onering_assets.change import state
from onering_assets.change.envs import (
    base,
    check_complete,
    differences,
    environments,
    gold_schema,
    silver_database,
)
from onering_assets.errors import ConfigError
from onering_assets.silver.plan import DATABASE, quote

if TYPE_CHECKING:
    import psycopg
    from clickhouse_connect.driver.client import Client

    from onering_assets.resources.locks import Locks

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
            if _record(then) != _record(now):  # re-built, or re-recorded (no run)
                moved.append(f"{key} {p or '(the whole table)'}")
    return moved


def _record(found: state.Deployed | None) -> tuple | None:
    if found is None:
        return None
    return found.run_id, found.source, tuple(sorted(found.inputs.items()))


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
    check_complete(client, env)
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
