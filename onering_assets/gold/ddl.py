"""Gold DDL: the Liquibase changelogs applied by OneRing and recorded as Liquibase records them.

OneRing runs pending changesets itself (no JVM at run time) and writes each one's row to
Liquibase's ``databasechangelog`` as Liquibase 4.3 writes it (path ``changelog/<file>``,
``8:`` checksum, description, comments), so ``liquibase update`` afterwards finds nothing
to do, and a database Liquibase migrated is one OneRing finds up to date. Changesets already
applied are compared by checksum, as Liquibase does: an edited one is refused.

Rows an earlier OneRing wrote (bare file name, no checksum, a sha256 in ``comments``) are
upgraded in place once their content is verified.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import psycopg
import sqlglot
from sqlglot import exp

from onering_assets.catalog import Column
from onering_assets.changelogs.formatted import (
    LIQUIBASE_VERSION,
    Changeset,
    changelog_files,
    read_changelog,
    read_changesets,
)
from onering_assets.changelogs.history import (
    Plan,
    Ran,
    comments,
    deployment_id,
    plan_changesets,
)
from onering_assets.errors import StoreBusyError

__all__ = [
    "Changeset",
    "Plan",
    "Ran",
    "apply_changelogs",
    "changelog_files",
    "created_columns",
    "gold_changesets",
    "gold_columns",
    "pending_changesets",
    "plan_changesets",
    "read_changelog",
    "read_changesets",
]


_CREATE_TABLE = re.compile(r"\bcreate\s+table\b", re.IGNORECASE)


_MENTIONS = re.compile(r"\bgold\s*\.\s*\"?([a-z_][a-z0-9_]*)", re.IGNORECASE)


def gold_columns(liquibase_dir: Path) -> dict[str, tuple[Column, ...]]:
    """Columns of every ``gold.*`` table created in the changelogs, in Postgres types."""
    tables: dict[str, tuple[Column, ...]] = {}
    for changeset in read_changelog(liquibase_dir):
        tables.update(created_columns(changeset.sql))
    return tables


def created_columns(text: str) -> dict[str, tuple[Column, ...]]:
    """Columns of each ``gold.*`` table a changeset's SQL creates."""
    # Only CREATE TABLE matters here; DO blocks, GRANT … ON ALL TABLES and ALTER DEFAULT
    # PRIVILEGES would make sqlglot warn "Falling back to parsing as a 'Command'".
    if not _CREATE_TABLE.search(text):
        return {}
    tables: dict[str, tuple[Column, ...]] = {}
    for statement in sqlglot.parse(text, dialect="postgres"):
        if not isinstance(statement, exp.Create) or statement.kind != "TABLE":
            continue
        target = statement.this
        table = target.this if isinstance(target, exp.Schema) else target
        if table.db != "gold":
            continue
        tables[table.name] = tuple(
            Column(col.name, col.args["kind"].sql(dialect="postgres").lower())
            for col in target.expressions
            if isinstance(col, exp.ColumnDef)
        )
    return tables


def gold_changesets(liquibase_dir: Path) -> dict[str, str]:
    """Per ``gold.*`` table, the SQL of every changeset that names it, in order (no parsing)."""
    found: dict[str, list[str]] = {}
    for changeset in read_changelog(liquibase_dir):
        for name in dict.fromkeys(m.lower() for m in _MENTIONS.findall(changeset.sql)):
            found.setdefault(name, []).append(changeset.sql)
    return {name: "\n".join(texts) for name, texts in found.items()}


_LOG_DDL = """
CREATE TABLE IF NOT EXISTS public.databasechangelog (
    id varchar(255) NOT NULL, author varchar(255) NOT NULL, filename varchar(255) NOT NULL,
    dateexecuted timestamp NOT NULL, orderexecuted integer NOT NULL, exectype varchar(10) NOT NULL,
    md5sum varchar(35), description varchar(255), comments varchar(255), tag varchar(255),
    liquibase varchar(20), contexts varchar(255), labels varchar(255), deployment_id varchar(10)
)
"""
_LOCK_DDL = """
CREATE TABLE IF NOT EXISTS public.databasechangeloglock (
    id integer NOT NULL, locked boolean NOT NULL, lockgranted timestamp,
    lockedby varchar(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id)
)
"""
_RAN = "SELECT id, author, filename, md5sum, comments FROM public.databasechangelog"


def _table_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()
    return bool(row and row[0])


def _recorded(conn: psycopg.Connection) -> list[Ran]:
    if not _table_exists(conn, "databasechangelog"):
        return []
    return [Ran(*row) for row in conn.execute(_RAN).fetchall()]


def pending_changesets(conn: psycopg.Connection, liquibase_dir: Path) -> list[Changeset]:
    """Changesets not applied yet, read without writing anything; edited ones are refused."""
    return plan_changesets(read_changelog(liquibase_dir), _recorded(conn)).pending


def _hold_liquibase_lock(conn: psycopg.Connection) -> None:
    """Lock Liquibase's own lock row until commit, so a real Liquibase run waits for ours."""
    conn.execute(_LOCK_DDL)
    conn.execute(
        "INSERT INTO public.databasechangeloglock (id, locked) VALUES (1, false)"
        " ON CONFLICT (id) DO NOTHING"
    )
    row = conn.execute(
        "SELECT locked, lockedby, lockgranted FROM public.databasechangeloglock"
        " WHERE id = 1 FOR UPDATE"
    ).fetchone()
    if row and row[0]:
        raise StoreBusyError(
            f"Liquibase holds its changelog lock on Gold (by {row[1]} since {row[2]}): wait for"
            " that run to finish, or run 'liquibase releaseLocks' if it is gone."
        )


def _upgrade(conn: psycopg.Connection, row: Ran, cs: Changeset) -> None:
    conn.execute(
        "UPDATE public.databasechangelog SET filename = %s, md5sum = %s, description = 'sql',"
        " comments = %s, liquibase = %s WHERE id = %s AND author = %s AND filename = %s",
        (
            cs.filename,
            cs.checksum,
            comments(cs),
            LIQUIBASE_VERSION,
            row.id,
            row.author,
            row.filename,
        ),
    )


def _record(conn: psycopg.Connection, cs: Changeset, order: int, deployment: str) -> None:
    conn.execute(
        "INSERT INTO public.databasechangelog (id, author, filename, dateexecuted,"
        " orderexecuted, exectype, md5sum, description, comments, liquibase, deployment_id)"
        " VALUES (%s, %s, %s, clock_timestamp()::timestamp, %s, 'EXECUTED', %s, 'sql', %s,"
        " %s, %s)",
        (
            cs.id,
            cs.author,
            cs.filename,
            order,
            cs.checksum,
            comments(cs),
            LIQUIBASE_VERSION,
            deployment,
        ),
    )


def apply_changelogs(conn: psycopg.Connection, liquibase_dir: Path) -> list[str]:
    """Apply every pending changeset and record it; return their ``author:id`` labels.

    Everything runs in ONE transaction (Postgres DDL is transactional), so a failing
    changeset leaves none of this call's changesets applied, where Liquibase would keep the
    ones before it. The advisory lock serializes OneRing processes; the row lock on
    Liquibase's ``databasechangeloglock`` makes a real Liquibase run wait for this one.
    """
    changesets = read_changelog(liquibase_dir)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('onering-liquibase'))")
        _hold_liquibase_lock(conn)
        conn.execute(_LOG_DDL)
        plan = plan_changesets(changesets, _recorded(conn))
        for row, cs in plan.upgrades:
            _upgrade(conn, row, cs)
        last = conn.execute("SELECT max(orderexecuted) FROM public.databasechangelog").fetchone()
        order = (last[0] if last and last[0] is not None else 0) + 1
        deployment = deployment_id(time.time_ns())
        for cs in plan.pending:
            conn.execute(cs.sql)  # type: ignore[arg-type]  # DDL from our own changelog
            _record(conn, cs, order, deployment)
            order += 1
    return [cs.label for cs in plan.pending]
