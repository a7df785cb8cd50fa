"""Gold checks, run in Postgres on the staged rows inside the publishing transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from onering_assets.catalog import SqlTable
from onering_assets.checks import names as checks
from onering_assets.checks.ge import run_suite
from onering_assets.checks.names import GE_SUITE
from onering_assets.checks.outcome import SAMPLE_ROWS, Outcome, schema_outcome
from onering_assets.checks.specs import gold_checks
from onering_assets.gold import publish
from onering_assets.gold.reconcile import (
    Batches,
    Reconciliation,
    compare,
    gold_sums,
    independent_count,
    landed_months,
)
from onering_assets.namespaces import gold_schema

if TYPE_CHECKING:
    import pyarrow as pa
    from clickhouse_connect.driver.client import Client

    from onering_assets.resources import LakeResource


def column_schema(conn: psycopg.Connection, table: SqlTable, computed: list[str]) -> Outcome:
    actual = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (gold_schema(), table.name),
    ).fetchall()
    declared = [(c.name, c.type) for c in table.columns]
    outcome = schema_outcome(checks.COLUMN_SCHEMA, declared, actual, f"gold.{table.name}")
    undeclared = [c for c in computed if c not in {d[0] for d in declared}]
    if undeclared:  # else published without them, silently
        alters = "; ".join(
            f"ALTER TABLE gold.{table.name} ADD COLUMN {c} <postgres type>" for c in undeclared
        )
        return Outcome(
            checks.COLUMN_SCHEMA,
            False,
            f"the SQL computes {', '.join(undeclared)}, which no changeset of "
            f"gold.{table.name} declares: add a changeset under platform/versioning/"
            f"liquibase/changelog/, e.g. {alters};",
            failing=len(undeclared),
        )
    missing = [c.name for c in table.columns if c.name not in computed]
    if outcome.passed and missing:
        return Outcome(
            checks.COLUMN_SCHEMA,
            False,
            f"the SQL does not compute {', '.join(missing)}",
            failing=len(missing),
        )
    return outcome


def not_empty(rows: int) -> Outcome:
    return Outcome(
        checks.NOT_EMPTY,
        rows > 0,
        f"{rows} rows" if rows else "no rows computed",
        failing=0 if rows else 1,
    )


def key_unique(conn: psycopg.Connection, table: SqlTable, relation: sql.Composable) -> Outcome:
    key = sql.SQL(", ").join(sql.Identifier(k) for k in table.key)
    dupes = conn.execute(
        sql.SQL("SELECT {k}, count(*) FROM {r} GROUP BY {k} HAVING count(*) > 1").format(
            k=key, r=relation
        )
    ).fetchall()
    label = ", ".join(table.key)
    return Outcome(
        checks.KEY_UNIQUE,
        not dupes,
        f"{len(dupes)} duplicated keys on ({label})" if dupes else f"({label}) is unique",
        failing=len(dupes),
        sample=[list(d) for d in dupes[:SAMPLE_ROWS]],
    )


def reconciliation(audit: MartAudit, recon: Reconciliation) -> Outcome:
    """The mart's sums per group against Bronze landed minus Silver rejected (independent).

    While Bronze and Silver hold different ingestions (another run mid-way), this raises
    UpstreamChangedError (retryable) for a staged mart and for checks alone alike: a
    difference that says nothing about the mart is never a failed check.
    """
    months = landed_months(audit.lake, recon.rows_of, audit.partitions)
    landed = independent_count(audit.client, audit.lake, recon, months, audit.silver_read)
    return compare(recon, gold_sums(audit.conn, recon, audit.relation), landed)


@dataclass
class MartAudit:
    """Every Gold check on one relation: the staged rows, or the published months."""

    conn: psycopg.Connection
    table: SqlTable
    client: Client
    lake: LakeResource
    partitions: list[str] | None
    relation: sql.Composable
    select: sql.Composed
    rows: int
    computed: list[str]
    # Staged audits only: the Silver batches the mart was computed from (``silver_read``).
    silver_read: Batches | None = None

    @classmethod
    def staged(
        cls,
        conn: psycopg.Connection,
        table: SqlTable,
        client: Client,
        lake: LakeResource,
        partitions: list[str] | None,
        result: pa.Table,
        silver_read: Batches | None = None,
    ) -> MartAudit:
        stage = publish.stage_name(table)
        select = sql.SQL("SELECT * FROM {s}").format(s=stage)
        return cls(
            conn,
            table,
            client,
            lake,
            partitions,
            stage,
            select,
            result.num_rows,
            list(result.column_names),
            silver_read,
        )

    @classmethod
    def published(
        cls,
        conn: psycopg.Connection,
        table: SqlTable,
        client: Client,
        lake: LakeResource,
        partitions: list[str] | None,
    ) -> MartAudit:
        """Audit the published months in place: a subquery, so checks alone write nothing."""
        select = sql.SQL("SELECT * FROM {t}").format(t=publish.target(table)) + (
            publish.window_literal(table, partitions)
        )
        relation = sql.SQL("({s}) AS published").format(s=select)
        found = conn.execute(sql.SQL("SELECT count(*) FROM {r}").format(r=relation)).fetchone()
        return cls(
            conn,
            table,
            client,
            lake,
            partitions,
            relation,
            select,
            found[0] if found else 0,
            [c.name for c in table.columns],
        )

    def checks(self) -> list[Outcome]:
        """The SQL checks (everything but the GX suite)."""
        outcomes = [
            column_schema(self.conn, self.table, self.computed),
            not_empty(self.rows),
            key_unique(self.conn, self.table, self.relation),
        ]
        recon = Reconciliation.of(self.table)
        if recon is not None:
            outcomes.append(reconciliation(self, recon))
        return outcomes

    def suite(self) -> Outcome | None:
        """The mart's Great Expectations suite, if it has one."""
        if not self.table.ge_suite or not any(d.name == GE_SUITE for d in gold_checks(self.table)):
            return None
        import pandas as pd

        cur = self.conn.execute(self.select)
        columns = pd.Index([d.name for d in cur.description or []])
        return run_suite(self.table.ge_suite, pd.DataFrame(cur.fetchall(), columns=columns))

    def all(self) -> list[Outcome]:
        suite = self.suite()
        return [*self.checks(), *([suite] if suite else [])]
