"""The SQL a Silver build runs, as plain functions (the benchmark runs the same statements).

Write-audit-publish in ClickHouse: candidates are computed once into a Memory table,
split into a staging table and a rejects staging table (named for the run), audited there,
and only then published with ``REPLACE PARTITION`` per month (``tuple()`` for whole tables),
journaled so that a crash mid-publish is rolled forward (``onering_assets.journal``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from onering_assets.catalog import INGESTION_COLUMNS, INGESTION_TYPES, SqlTable
from onering_assets.lineage.sql import replace_tables
from onering_assets.namespaces import silver_db
from onering_assets.partitions import month_key

DATABASE = "silver"
REJECT_COLUMNS = (
    ("_partition", "String"),
    ("_batch_id", "String"),
    ("_ingested_at", "DateTime64(3, 'UTC')"),
    ("_source", "String"),
    ("_row", "UInt64"),
    ("_raw", "String"),
    ("_reject_reason", "LowCardinality(String)"),
)
# Staging objects end in ``__stage__<run>`` / ``__candidates__<run>``; before run-scoped
# names they ended in ``__stage`` / ``__candidates`` (always orphans now).
STAGING_NAME = re.compile(r"__(?:stage|candidates)(?:__(?P<run>[a-z0-9]+))?$")


def quote(name: str) -> str:
    """Quote an identifier that the catalog has already validated."""
    return f"`{name}`"


@dataclass(frozen=True)
class SilverNames:
    """Every table one Silver build touches; staging carries the run's token."""

    table: str
    run: str

    @property
    def stage_name(self) -> str:
        return f"{self.table}__stage__{self.run}"

    @property
    def rejects_name(self) -> str:
        return f"{self.table}_rejects"

    @property
    def rejects_stage_name(self) -> str:
        return f"{self.table}_rejects__stage__{self.run}"

    @property
    def failed_rejects_name(self) -> str:
        return f"{self.table}_rejects_failed"

    @property
    def failed_rejects(self) -> str:
        return f"{silver_db()}.{quote(self.failed_rejects_name)}"

    @property
    def candidates_name(self) -> str:
        return f"{self.table}__candidates__{self.run}"

    @property
    def target(self) -> str:
        """The published table: production's, or the environment's being built."""
        return f"{silver_db()}.{quote(self.table)}"

    @property
    def rejects(self) -> str:
        return f"{silver_db()}.{quote(self.rejects_name)}"

    @property
    def stage(self) -> str:
        return f"{DATABASE}.{quote(self.stage_name)}"

    @property
    def rejects_stage(self) -> str:
        return f"{DATABASE}.{quote(self.rejects_stage_name)}"

    @property
    def candidates(self) -> str:
        return f"{DATABASE}.{quote(self.candidates_name)}"


def table_columns(table: SqlTable) -> list[tuple[str, str]]:
    return [(c.name, c.type) for c in table.columns] + [
        (c, INGESTION_TYPES[c]) for c in INGESTION_COLUMNS
    ]


def _engine(table: SqlTable, order_by: tuple[str, ...]) -> str:
    partition = "PARTITION BY _partition " if table.partitioned else ""
    return f"ENGINE = MergeTree {partition}ORDER BY ({', '.join(quote(c) for c in order_by)})"


FAILED_REJECT_COLUMNS = (("_run_id", "String"), ("_failed_at", "DateTime('UTC')"), *REJECT_COLUMNS)


def declared_tables(table: SqlTable) -> list[tuple[str, list[tuple[str, str]], str]]:
    """What the YAML declares: each table's name, columns and engine clause.

    The changelog under ``platform/versioning/liquibase-clickhouse/`` creates them; a build
    compares ClickHouse with this (``onering_assets.silver.schema``) before it writes.
    """
    names = SilverNames(table.name, "")
    return [
        (table.name, table_columns(table), _engine(table, table.order_by)),
        (
            names.rejects_name,
            list(REJECT_COLUMNS),
            _engine(table, ("_partition", "_reject_reason")),
        ),
        (
            names.failed_rejects_name,
            list(FAILED_REJECT_COLUMNS),
            "ENGINE = MergeTree PARTITION BY _run_id ORDER BY (_partition, _reject_reason, _row)",
        ),
    ]


def create_statements(table: SqlTable) -> list[str]:
    """The ``CREATE`` statements a changeset for a new Silver table would hold."""
    return [f"CREATE DATABASE IF NOT EXISTS {DATABASE}"] + [
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.{quote(name)} "
        f"({', '.join(f'{quote(n)} {t}' for n, t in columns)}) {engine}"
        for name, columns, engine in declared_tables(table)
    ]


def keep_failed_rejects(names: SilverNames) -> list[str]:
    """Copy a failed build's staged rejects into ``<table>_rejects_failed``, keyed by run.

    Evidence only: never published into ``<table>_rejects`` (so reconciliation and
    write–audit–publish are untouched); one partition per run, which ``onering gc`` drops
    after the quarantine retention. The run id is a bound parameter ``{run_id:String}``.
    The table itself is created by Silver's changelog.
    """
    names_list = ", ".join(quote(n) for n, _ in REJECT_COLUMNS)
    return [
        f"INSERT INTO {names.failed_rejects} (`_run_id`, `_failed_at`, {names_list}) "
        f"SELECT {{run_id:String}}, now(), {names_list} FROM {names.rejects_stage}",
    ]


def drop_work_tables(names: SilverNames) -> list[str]:
    return [
        f"DROP TABLE IF EXISTS {t}" for t in (names.stage, names.rejects_stage, names.candidates)
    ]


def source_sql(table: SqlTable, sources: dict[str, str]) -> str:
    """The declared SELECT with each ``bronze.<table>`` swapped for its lake table function."""
    return replace_tables(table.sql, "bronze", sources)


def stage_statements(table: SqlTable, selects: list[str], names: SilverNames) -> list[str]:
    """Fresh staging tables, then each SELECT (one per month) computed and split in turn.

    Candidates are computed once per SELECT into a Memory table, de-duplicated on the key
    and split into staging and rejects staging. The winner of a duplicate key is the latest
    ingestion (``_ingested_at``), then the row landed last in its file (``_row``); ``_raw``
    only breaks ties between rows landed before ``_row`` existed. The key holds the date, so
    duplicates never cross months: staging month by month gives the same rows with a
    twelfth of the memory.
    """
    key = ", ".join(quote(k) for k in table.key)
    cols = ", ".join(quote(n) for n, _ in table_columns(table))
    reject_cols = ", ".join(quote(n) for n, _ in REJECT_COLUMNS[:-1])
    statements = [
        *drop_work_tables(names),
        f"CREATE TABLE {names.stage} AS {names.target}",
        f"CREATE TABLE {names.rejects_stage} AS {names.rejects}",
    ]
    for select_sql in selects:
        statements += [
            f"DROP TABLE IF EXISTS {names.candidates}",
            f"CREATE TABLE {names.candidates} ENGINE = Memory AS "
            f"SELECT * EXCEPT (_rn), if(_reject_reason != '', _reject_reason, "
            f"if(_rn > 1, 'duplicate key', '')) AS _final_reason FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY _reject_reason = '', {key} "
            f"ORDER BY _ingested_at DESC, _row DESC, _raw) AS _rn FROM (\n{select_sql}\n))",
            f"INSERT INTO {names.stage} ({cols}) SELECT {cols} FROM {names.candidates} "
            f"WHERE _final_reason = ''",
            f"INSERT INTO {names.rejects_stage} ({reject_cols}, `_reject_reason`) "
            f"SELECT {reject_cols}, _final_reason FROM {names.candidates} "
            f"WHERE _final_reason != ''",
        ]
    return [*statements, f"DROP TABLE IF EXISTS {names.candidates}"]


def publish_statements(
    table: SqlTable, partitions: list[str] | None, names: SilverNames
) -> list[tuple[str, dict]]:
    """The swaps that publish a build: its months, or the whole table."""
    return swap_statements(partitions or [] if table.partitioned else None, names)


class Swap(Protocol):
    """Where a swap reads (``stage``, ``rejects_stage``) and writes (``target``, ``rejects``)."""

    @property
    def target(self) -> str: ...
    @property
    def rejects(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def rejects_stage(self) -> str: ...


def swap_statements(partitions: list[str] | None, names: Swap) -> list[tuple[str, dict]]:
    """Each month (``None``: the whole table) of the table and its rejects, from staging.

    ``REPLACE PARTITION … FROM`` keeps its source, so every statement can be run again with
    the same result: that is what lets a crashed publish be rolled forward from staging.
    A whole table replaces its one partition, ``tuple()``.
    """
    # An empty rejects partition is a real result: it must clear the previous rejects.
    empty_ok = {"allow_replace_partition_from_empty_source": 1}
    literals = ["tuple()"] if partitions is None else [f"'{month_key(k)}'" for k in partitions]
    statements: list[tuple[str, dict]] = []
    for literal in literals:
        statements.append(
            (f"ALTER TABLE {names.target} REPLACE PARTITION {literal} FROM {names.stage}", {})
        )
        statements.append(
            (
                f"ALTER TABLE {names.rejects} REPLACE PARTITION {literal} "
                f"FROM {names.rejects_stage}",
                empty_ok,
            )
        )
    return statements
