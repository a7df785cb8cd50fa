"""Gold DDL as Liquibase formatted-SQL changelogs: parse them, and apply them ourselves.

The applier records each changeset in Liquibase's own ``databasechangelog`` table (with a
null MD5SUM, which Liquibase fills in on its next run), so a later real Liquibase run sees
these changesets as applied instead of re-running them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlglot
from sqlglot import exp

from onering_assets.catalog import Column
from onering_assets.errors import ConfigError

CHANGESET = re.compile(r"^--changeset\s+([^:\s]+):(\S+)", re.MULTILINE)
_PG_TO_CH = {"TEXT": "String", "BIGINT": "Int64", "DATE": "Date", "DOUBLE": "Float64"}


@dataclass(frozen=True)
class Changeset:
    author: str
    id: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:32]


def changelog_files(liquibase_dir: Path) -> list[Path]:
    return sorted((liquibase_dir / "changelog").glob("*.sql"))


def read_changesets(path: Path) -> list[Changeset]:
    text = path.read_text()
    if not text.lstrip().startswith("--liquibase formatted sql"):
        raise ConfigError(f"{path}: a changelog must start with '--liquibase formatted sql'.")
    matches = list(CHANGESET.finditer(text))
    changesets = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end() : end]
        statements = "\n".join(
            line for line in body.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        changesets.append(Changeset(match.group(1), match.group(2), path.name, statements))
    return changesets


def gold_columns(liquibase_dir: Path) -> dict[str, tuple[Column, ...]]:
    """Columns of every ``gold.*`` table created in the changelogs, in Postgres types."""
    tables: dict[str, tuple[Column, ...]] = {}
    for path in changelog_files(liquibase_dir):
        for changeset in read_changesets(path):
            for statement in sqlglot.parse(changeset.sql, dialect="postgres"):
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


_LOG_DDL = """
CREATE TABLE IF NOT EXISTS public.databasechangelog (
    id varchar(255) NOT NULL, author varchar(255) NOT NULL, filename varchar(255) NOT NULL,
    dateexecuted timestamp NOT NULL, orderexecuted integer NOT NULL, exectype varchar(10) NOT NULL,
    md5sum varchar(35), description varchar(255), comments varchar(255), tag varchar(255),
    liquibase varchar(20), contexts varchar(255), labels varchar(255), deployment_id varchar(10)
)
"""


def apply_changelogs(conn: psycopg.Connection, liquibase_dir: Path) -> list[str]:
    """Apply every changeset not yet recorded, each in its own transaction; return their ids."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('onering-liquibase'))")
        conn.execute(_LOG_DDL)
        done = {
            (row[0], row[1], row[2])
            for row in conn.execute("SELECT id, author, filename FROM public.databasechangelog")
        }
        order = conn.execute("SELECT count(*) FROM public.databasechangelog").fetchone()
        next_order = (order[0] if order else 0) + 1
        for path in changelog_files(liquibase_dir):
            for cs in read_changesets(path):
                if (cs.id, cs.author, cs.filename) in done:
                    continue
                conn.execute(cs.sql)  # type: ignore[arg-type]  # DDL from our own changelog
                conn.execute(
                    "INSERT INTO public.databasechangelog (id, author, filename, dateexecuted,"
                    " orderexecuted, exectype, description, comments, liquibase)"
                    " VALUES (%s, %s, %s, now(), %s, 'EXECUTED', 'sql', %s, 'onering')",
                    (cs.id, cs.author, cs.filename, next_order, f"sha256:{cs.checksum}"),
                )
                next_order += 1
                applied.append(f"{cs.author}:{cs.id}")
    return applied
