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
from collections.abc import Callable
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
    "declared_columns",
    "gold_changesets",
    "gold_columns",
    "pending_changesets",
    "plan_changesets",
    "read_changelog",
    "read_changesets",
]


_CREATE_OR_ALTER = re.compile(r"\b(create|alter)\s+table\b", re.IGNORECASE)


_MENTIONS = re.compile(r"\bgold\"?\s*\.\s*\"?([a-z_][a-z0-9_]*)", re.IGNORECASE)
_TABLE_RENAMES = re.compile(
    r"\balter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?\"?gold\"?\s*\.\s*\"?([a-z_][a-z0-9_]*)\"?"
    r"\s+rename\s+to\s+\"?([a-z_][a-z0-9_]*)",
    re.IGNORECASE,
)


def gold_columns(liquibase_dir: Path) -> dict[str, tuple[Column, ...]]:
    """Columns of every ``gold.*`` table as its changesets leave it, in Postgres types.

    ``CREATE TABLE`` declares a table; a later ``ALTER TABLE`` adds, drops, retypes or renames
    its columns (a new column of a mart is a new changeset, never an edit of an applied one).
    """
    tables: dict[str, tuple[Column, ...]] = {}
    for changeset in read_changelog(liquibase_dir):
        declared_columns(changeset.sql, tables)
    return tables


def _statements(text: str) -> list[exp.Expr]:
    # Only CREATE/ALTER TABLE matter here; DO blocks, GRANT … ON ALL TABLES and ALTER DEFAULT
    # PRIVILEGES would make sqlglot warn "Falling back to parsing as a 'Command'".
    if not _CREATE_OR_ALTER.search(text):
        return []
    return [s for s in sqlglot.parse(text, dialect="postgres") if s is not None]


# sqlglot's spelling -> the name Postgres reports in information_schema.columns.data_type
# (what the column_schema check compares with); parameters are not part of data_type.
_PG_NAMES = {
    "int": "integer",
    "decimal": "numeric",
    "varchar": "character varying",
    "char": "character",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "bool": "boolean",
}


def _type(node: exp.Expr) -> str:
    text = node.sql(dialect="postgres").lower()
    return _PG_NAMES.get(text.split("(")[0].strip(), text)


def _name(node: exp.Expr) -> str:
    """A name as Postgres keeps it: an unquoted identifier folds to lower case."""
    ident = node if isinstance(node, exp.Identifier) else node.find(exp.Identifier)
    if ident is None:
        return node.name
    return ident.name if ident.quoted else ident.name.lower()


def _gold_table(node: exp.Expr) -> str | None:
    table = node.this if isinstance(node, exp.Schema) else node
    if not isinstance(table, exp.Table) or table.db.lower() != "gold":
        return None
    return _name(table.this)


def declared_columns(
    text: str, tables: dict[str, tuple[Column, ...]] | None = None
) -> dict[str, tuple[Column, ...]]:
    """The ``gold.*`` tables' columns after ``text``'s statements, in order, from ``tables``.

    ``CREATE TABLE`` declares a table's columns; ``ALTER TABLE`` changes them (see
    ``gold_columns``). ``tables`` (updated in place) holds what earlier changesets left.
    """
    tables = {} if tables is None else tables
    for statement in _statements(text):
        if isinstance(statement, exp.Create) and statement.kind == "TABLE":
            name = _gold_table(statement.this)
            if name is not None:
                tables[name] = tuple(
                    Column(_name(col.this), _type(col.args["kind"]))
                    for col in statement.this.expressions
                    if isinstance(col, exp.ColumnDef)
                )
        elif isinstance(statement, exp.Alter) and statement.args.get("kind") == "TABLE":
            name = _gold_table(statement.this)
            for action in statement.args.get("actions") or []:
                change = _renamed(statement, action) or _column_change(action)
                if name not in tables or change is None:
                    continue
                if isinstance(change, str):  # ALTER TABLE gold.a RENAME TO b
                    tables[change] = tables.pop(name)
                    name = change
                else:
                    tables[name] = change(tables[name])
    return tables


Change = Callable[[tuple[Column, ...]], tuple[Column, ...]]


def _renamed(statement: exp.Alter, action: exp.Expr) -> Change | str | None:
    """``RENAME a TO b`` (COLUMN is optional in Postgres) or ``RENAME TO b`` (the table)."""
    if not isinstance(action, exp.AlterRename):
        return None
    to = [
        _name(o.this)
        for o in statement.args.get("options") or []
        if isinstance(o, exp.ToTableProperty)
    ]
    if not to:
        return _name(action.this)
    old, new = _name(action.this), to[0]
    return lambda cols: tuple(Column(new, c.type) if c.name == old else c for c in cols)


def _column_change(action: exp.Expr) -> Change | None:
    if isinstance(action, exp.ColumnDef) and action.args.get("kind") is not None:
        added = Column(_name(action.this), _type(action.args["kind"]))
        return lambda cols: cols if any(c.name == added.name for c in cols) else (*cols, added)
    if isinstance(action, exp.Drop) and str(action.args.get("kind", "")).upper() == "COLUMN":
        gone = {_name(t) for t in action.args.get("tables") or []}
        return lambda cols: tuple(c for c in cols if c.name not in gone)
    if isinstance(action, exp.AlterColumn) and action.args.get("dtype") is not None:
        name, new = _name(action.this), _type(action.args["dtype"])
        return lambda cols: tuple(Column(c.name, new) if c.name == name else c for c in cols)
    if isinstance(action, exp.RenameColumn):
        old, to = _name(action.this), _name(action.args["to"])
        return lambda cols: tuple(Column(to, c.type) if c.name == old else c for c in cols)
    return None


def gold_changesets(liquibase_dir: Path) -> dict[str, str]:
    """Per ``gold.*`` table, the SQL of every changeset that names it, in order (no parsing).

    A table renamed (``ALTER TABLE gold.a RENAME TO b``) keeps its changesets under its new
    name, the renaming one included.
    """
    found: dict[str, list[str]] = {}
    for changeset in read_changelog(liquibase_dir):
        for name in dict.fromkeys(m.lower() for m in _MENTIONS.findall(changeset.sql)):
            found.setdefault(name, []).append(changeset.sql)
        for old, new in _TABLE_RENAMES.findall(changeset.sql):
            found[new.lower()] = list(found.get(old.lower(), []))
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
