"""Silver DDL: Liquibase changelogs applied to ClickHouse and recorded as Liquibase records them.

Every Silver table (and its ``_rejects`` and ``_rejects_failed``) is created by a changeset
under ``platform/versioning/liquibase-clickhouse/changelog/``, never by an implicit
``CREATE``: a build applies the pending changesets, then compares each table it writes with
its YAML declaration and refuses to run when they differ, naming the changeset to add.

The history lives in ClickHouse, in ``default.databasechangelog`` with the columns and
engine that the Liquibase ClickHouse extension (``liquibase-clickhouse``) creates, and each
row carries Liquibase's ``8:`` checksum, so the same changelog can be run by a real Liquibase
with that extension (``liquibase.properties`` beside the changelog says how) and OneRing
finds what it applied. ClickHouse DDL is not transactional: each changeset is recorded right
after its statements ran, and a failing one is not recorded and stops the run, as Liquibase
does; the changesets before it stay applied. Write changesets that can run again
(``IF NOT EXISTS``), one statement each where you can.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from onering_assets.changelogs.formatted import LIQUIBASE_VERSION, Changeset, read_changelog
from onering_assets.changelogs.history import (
    Ran,
    comments,
    deployment_id,
    plan_changesets,
)
from onering_assets.chtables import table_exists
from onering_assets.errors import ChangelogError, StoreBusyError
from onering_assets.query import one_line
from onering_assets.resources.locks import Locks
from onering_assets.settings import PLATFORM_DIR

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

CHANGELOG_DIR = PLATFORM_DIR / "versioning" / "liquibase-clickhouse"
HISTORY_DATABASE = "default"
LOG_TABLE = f"{HISTORY_DATABASE}.databasechangelog"
LOCK_TABLE = f"{HISTORY_DATABASE}.databasechangeloglock"
MIGRATE_LOCK = "migrate:silver"

# CreateDatabaseChangeLogTableClickHouse / CreateDatabaseChangeLogLockTableClickHouse.
_LOG_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LOG_TABLE} (ID String, AUTHOR String, FILENAME String,"
    " DATEEXECUTED DateTime64, ORDEREXECUTED UInt64, EXECTYPE String,"
    " MD5SUM Nullable(String), DESCRIPTION Nullable(String), COMMENTS Nullable(String),"
    " TAG Nullable(String), LIQUIBASE Nullable(String), CONTEXTS Nullable(String),"
    " LABELS Nullable(String), DEPLOYMENT_ID Nullable(String)) ENGINE MergeTree() ORDER BY ID"
)
_LOCK_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LOCK_TABLE} (ID Int64, LOCKED UInt8,"
    " LOCKGRANTED Nullable(DateTime64), LOCKEDBY Nullable(String)) ENGINE MergeTree() ORDER BY ID"
)


def split_statements(sql: str) -> list[str]:
    """The statements of a changeset, split at ``;`` outside quotes and comments.

    Liquibase splits a formatted-SQL changeset at ``;`` too (``splitStatements:true``, its
    default) and sends each statement alone, which is what a ClickHouse server accepts.
    ``--`` and ``/* … */`` comments are dropped.
    """
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(sql):
                current.append(sql[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            close = "\n" if sql[i] == "-" else "*/"
            end = sql.find(close, i + 2)
            i = len(sql) if end < 0 else end + len(close)
            current.append(" ")
            continue
        elif ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


@contextmanager
def _history(what: str) -> Iterator[None]:
    """Driver errors on the history tables, as one line naming them."""
    try:
        yield
    except (ChangelogError, StoreBusyError):
        raise
    except Exception as exc:  # the driver's own error types differ for chDB and HTTP
        raise ChangelogError(
            f"{what} {LOG_TABLE} failed: {one_line(str(exc))}. Is it a history table another"
            " tool made? Liquibase's ClickHouse extension and OneRing create it alike."
        ) from exc


def recorded(client: Client) -> list[Ran]:
    """The rows of ``default.databasechangelog`` (none when it does not exist)."""
    if not table_exists(client, HISTORY_DATABASE, "databasechangelog"):
        return []
    with _history("Reading"):
        rows = client.query(f"SELECT ID, AUTHOR, FILENAME, MD5SUM, COMMENTS FROM {LOG_TABLE}")
    return [Ran(*row) for row in rows.result_rows]


def pending_changesets(client: Client, changelog_dir: Path = CHANGELOG_DIR) -> list[Changeset]:
    """Changesets not applied to ClickHouse yet, read without writing; edits are refused."""
    return plan_changesets(read_changelog(changelog_dir), recorded(client), "ClickHouse").pending


def _refuse_if_liquibase_runs(client: Client) -> None:
    held = client.query(
        f"SELECT LOCKEDBY, LOCKGRANTED FROM {LOCK_TABLE} WHERE ID = 1 AND LOCKED = 1 LIMIT 1"
    ).result_rows
    if held:
        by, since = held[0]
        raise StoreBusyError(
            f"Liquibase holds its changelog lock on ClickHouse (by {by} since {since}): wait"
            " for that run to finish, or run 'liquibase releaseLocks' if it is gone."
        )


def run_changeset(client: Client, cs: Changeset) -> None:
    """Run one changeset's statements; a failure names it and what already ran."""
    statements = split_statements(cs.sql) if cs.split_statements else [cs.sql]
    for i, statement in enumerate(statements):
        try:
            client.command(statement)
        except Exception as exc:  # the driver's own error types differ for chDB and HTTP
            ran = (
                f"; its statements 1-{i} ran and stay (ClickHouse DDL is not transactional),"
                " so make them safe to run again (IF NOT EXISTS)"
                if i
                else ""
            )
            raise ChangelogError(
                f"Changeset {cs.label} in {cs.path} failed on ClickHouse at statement {i + 1}"
                f" of {len(statements)}: {one_line(str(exc))}. It is not recorded{ran}; the"
                " changesets before it stay applied. Fix it and run again."
            ) from exc


def _record(client: Client, cs: Changeset, order: int, deployment: str) -> None:
    client.command(
        f"INSERT INTO {LOG_TABLE} (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, EXECTYPE,"
        " MD5SUM, DESCRIPTION, COMMENTS, LIQUIBASE, DEPLOYMENT_ID) VALUES ({id:String},"
        " {author:String}, {file:String}, now64(3), {order:UInt64}, 'EXECUTED', {md5:String},"
        " 'sql', {comments:String}, {version:String}, {deployment:String})",
        parameters={
            "id": cs.id,
            "author": cs.author,
            "file": cs.filename,
            "order": order,
            "md5": cs.checksum,
            "comments": comments(cs),
            "version": LIQUIBASE_VERSION,
            "deployment": deployment,
        },
    )


def _upgrade(client: Client, row: Ran, cs: Changeset) -> None:
    # UpdateChangeSetChecksumClickHouse: a mutation, waited for.
    client.command(
        f"ALTER TABLE {LOG_TABLE} UPDATE FILENAME = {{file:String}}, MD5SUM = {{md5:String}}"
        " WHERE ID = {id:String} AND AUTHOR = {author:String} AND FILENAME = {old:String}",
        parameters={
            "file": cs.filename,
            "md5": cs.checksum,
            "id": row.id,
            "author": row.author,
            "old": row.filename,
        },
        settings={"mutations_sync": 1},
    )


def apply_changelogs(
    client: Client, locks: Locks, changelog_dir: Path = CHANGELOG_DIR
) -> list[str]:
    """Apply every pending changeset in order and record each; return their labels.

    OneRing processes take turns under the ``migrate:silver`` lock; a real Liquibase run
    that holds its lock row makes this refuse rather than migrate beside it.
    """
    changesets = read_changelog(changelog_dir)
    with locks.hold(MIGRATE_LOCK, what="Silver's changelog"):
        with _history("Creating or locking"):
            client.command(f"CREATE DATABASE IF NOT EXISTS {HISTORY_DATABASE}")
            client.command(_LOCK_DDL)
            _refuse_if_liquibase_runs(client)
            client.command(_LOG_DDL)
        plan = plan_changesets(changesets, recorded(client), "ClickHouse")
        with _history("Updating"):
            for row, cs in plan.upgrades:
                _upgrade(client, row, cs)
            last = client.query(f"SELECT max(ORDEREXECUTED) FROM {LOG_TABLE}").result_rows
        order = int(last[0][0] or 0) + 1
        deployment = deployment_id(time.time_ns())
        for cs in plan.pending:
            run_changeset(client, cs)
            with _history("Recording a changeset in"):
                _record(client, cs, order, deployment)
            order += 1
    return [cs.label for cs in plan.pending]


# Clients that have applied the changelog: one per run (the resource closes it after), so a
# run's other Silver tables do not apply it again, and the next run does.
_migrated: weakref.WeakSet[Client] = weakref.WeakSet()


def apply_once(client: Client, locks: Locks) -> list[str]:
    """``apply_changelogs`` once per client: what every Silver build calls before it writes."""
    if client in _migrated:
        return []
    applied = apply_changelogs(client, locks)
    _migrated.add(client)
    return applied
