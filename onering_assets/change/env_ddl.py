"""Changesets in an environment: production's pending ones, run on the environment's namespaces.

An environment starts with production's tables (``envs.create``). A change that needs a
changeset (a new Silver column, a Gold mart's new column or type) is built into environment
ENV by running every changeset production has not applied yet against ENV's namespaces: each
``silver.`` or ``gold.`` qualifier of its SQL (outside string literals and comments) becomes
``silver__ENV.`` or ``gold__ENV.``, and the changeset is recorded in ENV's own ``_changelog``
table, never in production's history. Production's schema is untouched until ``onering env
promote``, which first migrates production as any production build does (the same
changesets, recorded in production's history) and then swaps the environment's partitions in.

A changeset applied to ENV and edited since is refused (re-create the environment), as
production refuses an edited applied changeset. Gold's run in one Postgres transaction with
their records; Silver's are recorded one by one after they ran (ClickHouse DDL is not
transactional), as production's are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from onering_assets.chtables import table_exists
from onering_assets.errors import ChangelogError
from onering_assets.namespaces import gold_schema, silver_db

if TYPE_CHECKING:
    import psycopg
    from clickhouse_connect.driver.client import Client

    from onering_assets.changelogs.formatted import Changeset
    from onering_assets.resources.locks import Locks

LOG = "_changelog"  # in silver__ENV and gold__ENV: dropped with the environment
_SILVER_LOG = (
    "CREATE TABLE IF NOT EXISTS {db}.{log} (id String, author String, filename String, "
    "md5 String, applied_at DateTime64(3, 'UTC')) ENGINE MergeTree ORDER BY (filename, id)"
)
_GOLD_LOG = (
    "CREATE TABLE IF NOT EXISTS {s}.{log} (id text NOT NULL, author text NOT NULL, "
    "filename text NOT NULL, md5 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (filename, id, author))"
)
_SKIP = r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/"


def in_env(sql: str, schema: str, env: str) -> str:
    """``sql`` with each ``schema.`` qualifier renamed ``schema__env.``.

    Bare, `back-quoted` and "quoted" qualifiers are renamed; string literals and comments
    are left as they are.
    """
    pattern = re.compile(
        rf"(?P<skip>{_SKIP})|(?<![\w.$])(?P<q>[`\"]?)(?P<name>{re.escape(schema)})(?P=q)(?=\s*\.)",
        re.IGNORECASE | re.DOTALL,
    )
    target = f"{schema}__{env}"

    def rename(m: re.Match[str]) -> str:
        return m.group(0) if m.group("skip") else f"{m.group('q')}{target}{m.group('q')}"

    return pattern.sub(rename, sql)


def confined(cs: Changeset, schema: str, env: str, dialect: str) -> str:
    """``cs``'s SQL renamed into ``env``, if every statement stays inside ``schema__env``.

    An environment must never write production: a statement naming a table of another
    schema or none (a ``search_path``, a ``default`` database), creating another schema, or
    one that cannot be read (a ``GRANT``, a ``SET``) is refused. ``CREATE SCHEMA|DATABASE
    … IF NOT EXISTS`` of the layer's own schema is allowed (production's exists: a no-op).

    Raises:
        ChangelogError: naming the changeset; it can still be applied to production
            (`onering migrate`), after which environments no longer run it.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    sql = in_env(cs.sql, schema, env)
    target = f"{schema}__{env}"

    def refuse(why: str) -> ChangelogError:
        return ChangelogError(
            f"Changeset {cs.label} ({cs.path.name}) cannot run in environment {env!r}: {why}. "
            "An environment's changesets may only touch "
            f"{schema}.<table>; apply it to production first (`onering migrate`), or change it."
        )

    try:
        statements = [s for s in sqlglot.parse(sql, dialect=dialect) if s is not None]
    except ParseError as err:
        raise refuse(f"its SQL cannot be read ({str(err).splitlines()[0]})") from None
    for st in statements:
        if isinstance(st, exp.Create) and str(st.args.get("kind")).upper() in (
            "SCHEMA",
            "DATABASE",
        ):
            names = {(t.name or t.db).lower() for t in st.find_all(exp.Table)}
            if names <= {schema, target}:
                continue
            raise refuse(f"it creates {', '.join(sorted(names))}")
        if isinstance(st, (exp.Command, exp.Set)):
            raise refuse(f"it runs {st.sql(dialect=dialect)[:60]!r}")
        outside = sorted(
            {f"{t.db}.{t.name}" if t.db else t.name for t in st.find_all(exp.Table)}
            - {f"{target}.{t.name}" for t in st.find_all(exp.Table)}
        )
        if outside:
            raise refuse(f"it names {', '.join(outside)}")
    return sql


def _todo(pending: list[Changeset], done: dict[tuple[str, str, str], str], env: str) -> list:
    """The pending changesets ENV has not run; one it ran and that was edited since is refused."""
    todo = []
    for cs in pending:
        ran = done.get((cs.id, cs.author, cs.filename))
        if ran is None:
            todo.append(cs)
        elif not cs.accepts(ran):
            raise ChangelogError(
                f"Changeset {cs.label} in {cs.path} was applied to environment {env!r} and "
                f"edited since: `onering env drop {env}`, then build it again."
            )
    return todo


def _done(rows: Sequence[Sequence[object]]) -> dict[tuple[str, str, str], str]:
    """A ``_changelog``'s rows: (id, author, file) -> the checksum it ran."""
    return {(str(r[0]), str(r[1]), str(r[2])): str(r[3]) for r in rows}


def silver_ran(client: Client, env: str) -> dict[tuple[str, str, str], str]:
    """The Silver changesets ENV ran (none before its first): see :func:`_done`."""
    db = silver_db(env)
    if not table_exists(client, db, LOG):
        return {}
    return _done(client.query(f"SELECT id, author, filename, md5 FROM {db}.{LOG}").result_rows)


def apply_silver(client: Client, locks: Locks, env: str) -> list[str]:
    """Run on ``silver__env`` the Silver changesets production has pending; their labels."""
    from onering_assets.silver import ddl

    db = silver_db(env)
    with locks.hold(f"{ddl.MIGRATE_LOCK}:{env}", what=f"Silver's changelog of {env}"):
        client.command(_SILVER_LOG.format(db=db, log=LOG))
        todo = _todo(ddl.pending_changesets(client), silver_ran(client, env), env)
        for cs in todo:
            ddl.run_changeset(client, replace(cs, sql=confined(cs, "silver", env, "clickhouse")))
            client.command(
                f"INSERT INTO {db}.{LOG} VALUES ({{id:String}}, {{author:String}}, "
                "{file:String}, {md5:String}, now64(3))",
                parameters={
                    "id": cs.id,
                    "author": cs.author,
                    "file": cs.filename,
                    "md5": cs.checksum,
                },
            )
    return [cs.label for cs in todo]


def apply_gold(conn: psycopg.Connection, env: str) -> list[str]:
    """Run on ``gold__env`` the Gold changesets production has pending, in one transaction."""
    from psycopg import sql

    from onering_assets.gold.ddl import pending_changesets
    from onering_assets.settings import PLATFORM_DIR

    log = sql.Identifier(gold_schema(env), LOG)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"onering-liquibase:{env}",))
        conn.execute(sql.SQL(_GOLD_LOG.replace("{s}.{log}", "{t}")).format(t=log))
        rows = conn.execute(sql.SQL("SELECT id, author, filename, md5 FROM {}").format(log))
        done = _done(rows.fetchall())
        pending = pending_changesets(conn, PLATFORM_DIR / "versioning" / "liquibase")
        todo = _todo(pending, done, env)
        for cs in todo:
            conn.execute(confined(cs, "gold", env, "postgres"))  # type: ignore[arg-type]
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (id, author, filename, md5) VALUES (%s, %s, %s, %s)"
                ).format(log),
                (cs.id, cs.author, cs.filename, cs.checksum),
            )
    return [cs.label for cs in todo]


def applied(client: Client, conn: psycopg.Connection | None, env: str) -> list[str]:
    """The changesets ENV ran that production has not (what promoting it first migrates).

    Raises:
        ChangelogError: one of them was edited since ENV ran it: production would run
            another changeset than the one the environment was built with.
    """
    from onering_assets.gold.ddl import pending_changesets
    from onering_assets.settings import PLATFORM_DIR
    from onering_assets.silver import ddl

    def ran_of(pending: list[Changeset], done: dict[tuple[str, str, str], str]) -> list[str]:
        _todo(pending, done, env)  # refuses an edited one
        return [cs.label for cs in pending if (cs.id, cs.author, cs.filename) in done]

    labels: list[str] = []
    ran = silver_ran(client, env)
    if ran:
        labels += ran_of(ddl.pending_changesets(client), ran)
    if conn is not None:
        from psycopg import sql

        found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{gold_schema(env)}.{LOG}",))
        row = found.fetchone()
        if row and row[0]:
            log = sql.Identifier(gold_schema(env), LOG)
            query = sql.SQL("SELECT id, author, filename, md5 FROM {}").format(log)
            pending = pending_changesets(conn, PLATFORM_DIR / "versioning" / "liquibase")
            labels += ran_of(pending, _done(conn.execute(query).fetchall()))
    return labels
