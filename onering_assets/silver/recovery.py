"""Finish crashed Silver publishes and drop staging that no live run owns.

Runs when a process opens the store (chDB: nothing else can hold it then) and, under the
table's publication lock, before each publish (a ClickHouse server shared by many runs).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from onering_assets import journal
from onering_assets.chtables import table_exists
from onering_assets.namespaces import building
from onering_assets.resources.locks import Locks
from onering_assets.silver import plan

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)


def stage_lock(table: str, run: str) -> str:
    """The lock a run holds while its staging of ``table`` exists (a live owner)."""
    return f"stage:silver.{table}.{run}"


def publish_lock(table: str) -> str:
    return f"publish:silver.{table}"


def _exists(client: Client, name: str) -> bool:
    return table_exists(client, plan.DATABASE, name)


def applier(client: Client) -> tuple[journal.Apply, journal.Apply]:
    """Redo an entry's swaps (each idempotent), and drop its staging once it is done."""

    def apply(entry: journal.Entry) -> None:
        names = plan.SilverNames(entry.table, entry.run)
        if not (_exists(client, names.stage_name) and _exists(client, names.rejects_stage_name)):
            log.warning("silver.%s: staging of run %s is gone; skipped", entry.table, entry.run)
            return
        partitions = entry.payload.get("partitions")
        # A build into an environment swaps into the environment's tables.
        with building(entry.payload.get("env", "")):
            swaps = plan.swap_statements(partitions, names)
        for i, (statement, settings) in enumerate(swaps):
            client.command(statement, settings=settings)
            if i == 0:
                journal.fault("silver.publish.after_first_swap")

    def cleanup(entry: journal.Entry) -> None:
        for statement in plan.drop_work_tables(plan.SilverNames(entry.table, entry.run)):
            client.command(statement)

    return apply, cleanup


def recover_table(client: Client, jr: journal.Journal, table: str) -> list[journal.Entry]:
    """Finish the table's pending publishes (the caller holds its publication lock)."""
    apply, cleanup = applier(client)
    return journal.recover(jr, apply, cleanup, layer="silver", table=table)


def recover(client: Client, locks: Locks) -> list[journal.Entry]:
    """Finish every pending Silver publish, then drop orphaned staging tables."""
    jr = journal.ClickHouseJournal(client)
    finished: list[journal.Entry] = []
    for table in sorted({e.table for e in jr.pending("silver")}):
        with locks.hold(publish_lock(table), what=f"Publishing silver.{table}"):
            finished += recover_table(client, jr, table)
    drop_orphans(client, locks, jr)
    return finished


def staging_tables(client: Client) -> list[str]:
    """Every staging table in the Silver database (tests assert none is left behind)."""
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        parameters={"db": plan.DATABASE},
    ).result_rows
    return [name for (name,) in rows if plan.STAGING_NAME.search(name)]


def drop_orphans(client: Client, locks: Locks, jr: journal.Journal) -> list[str]:
    """Drop staging whose run is gone: not named by a pending entry, its stage lock free.

    Names from before run-scoped staging (no run token) are always orphans.
    """
    owned = set()
    for entry in jr.pending("silver"):
        names = plan.SilverNames(entry.table, entry.run)
        owned |= {names.stage_name, names.rejects_stage_name, names.candidates_name}
    dropped = []
    for name in staging_tables(client):
        match = plan.STAGING_NAME.search(name)
        run = match.group("run") if match else None
        table = name[: match.start()].removesuffix("_rejects") if match else name
        if name in owned or (run and locks.is_held(stage_lock(table, run))):
            continue
        client.command(f"DROP TABLE IF EXISTS {plan.DATABASE}.{plan.quote(name)}")
        dropped.append(name)
    return dropped
