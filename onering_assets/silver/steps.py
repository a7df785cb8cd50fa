"""One Silver build as plain steps: create, stage, audit, publish, drop.

The asset runs these in order (yielding the audit between audit and publish); the
benchmark's raw baseline runs the same steps without Dagster.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from onering_assets import journal
from onering_assets.catalog import INGESTION_COLUMNS, INGESTION_TYPES, SqlTable, load_catalog
from onering_assets.change import datadiff
from onering_assets.change.datadiff import DataDiff
from onering_assets.checks.ge import run_suite
from onering_assets.checks.names import GE_SUITE
from onering_assets.checks.outcome import Outcome
from onering_assets.checks.specs import silver_checks
from onering_assets.chtables import table_exists
from onering_assets.errors import ConfigError
from onering_assets.namespaces import current, silver_db
from onering_assets.partitions import MONTHLY, month_key
from onering_assets.resources import LakeResource
from onering_assets.resources.locks import Locks
from onering_assets.silver import ddl, plan, recovery, schema
from onering_assets.silver.audit import Audited, audit

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def bronze_structure(name: str) -> str:
    """The Bronze table's columns for the lake table function, read by name.

    Files landed before ``_row`` existed read it as 0, so an older lake still builds.
    """
    bronze = load_catalog().table("bronze", name)
    columns = [(c.name, "Nullable(String)") for c in bronze.columns]
    columns += [(c, INGESTION_TYPES[c]) for c in INGESTION_COLUMNS]
    return ", ".join(f"{plan.quote(n)} {t}" for n, t in columns)


def bronze_sources(
    table: SqlTable, lake: LakeResource, partitions: list[str] | None, tag: str = ""
) -> tuple[dict[str, str], dict[str, str]]:
    """Lake table functions for each Bronze table the SQL reads, and their parameters.

    ``tag`` keeps parameter names apart when several sources share one statement list.
    """
    sources, params = {}, {}
    for i, (_, name) in enumerate(table.upstream):
        fn, fn_params = lake.clickhouse_source("bronze", name, partitions, bronze_structure(name))
        for param, value in fn_params.items():
            fn = fn.replace(f"{{{param}:", f"{{{param}_{i}{tag}:")
            params[f"{param}_{i}{tag}"] = value
        sources[name] = fn
    return sources, params


# Bronze rows one staging statement reads at most: consecutive months are grouped up to this
# many, so a small table is staged in one statement and a big month (30x) in its own.
STAGE_BATCH_ROWS = 1_000_000


def month_batches(
    table: SqlTable, lake: LakeResource, partitions: list[str] | None
) -> list[list[str] | None]:
    """The months staged together, in order (``[None]``: a whole table, one statement).

    Rows are counted from the Bronze files' Parquet footers, so grouping reads no data. The
    key holds the date, so duplicates never cross months and any grouping stages the same rows.
    """
    if not partitions:
        return [None]
    name = table.upstream[0][1]
    batches: list[list[str] | None] = []
    current: list[str] = []
    rows = 0
    for month in partitions:
        size = lake.rows("bronze", name, month)
        if current and rows + size > STAGE_BATCH_ROWS:
            batches.append(current)
            current, rows = [], 0
        current.append(month)
        rows += size
    return [*batches, current]


def staged_selects(
    table: SqlTable, lake: LakeResource, partitions: list[str] | None
) -> tuple[list[str], dict[str, str]]:
    """The declared SELECT once per batch of months (``month_batches``), with parameters."""
    selects, params = [], {}
    for i, months in enumerate(month_batches(table, lake, partitions)):
        sources, part_params = bronze_sources(table, lake, months, f"_p{i}")
        selects.append(plan.source_sql(table, sources))
        params.update(part_params)
    return selects, params


def published_partitions(table: SqlTable, lake: LakeResource) -> list[str]:
    """Months whose Bronze input is in the lake (what checks run alone can audit)."""
    name = table.upstream[0][1]
    return [p for p in MONTHLY.get_partition_keys() if lake.has_rows_for("bronze", name, p)]


@dataclass
class SilverBuild:
    """One table's build over some months (``None``: the whole table) by one run.

    Staging is named for the run, and the run holds the table's stage lock from ``stage``
    to ``drop`` so that no other process takes it for an orphan.
    """

    client: Client
    table: SqlTable
    lake: LakeResource
    partitions: list[str] | None
    run_id: str
    # Only a materialization needs locks; checks alone pass None (and write nothing).
    locks: Locks | None
    _held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    @property
    def run(self) -> str:
        return journal.run_token(self.run_id)

    @property
    def names(self) -> plan.SilverNames:
        return plan.SilverNames(self.table.name, self.run)

    def has_input(self) -> bool:
        if self.table.partitioned:
            return bool(self.partitions)
        return self.lake.exists("bronze", self.table.upstream[0][1])

    def published(self) -> bool:
        """Whether the table exists (checks alone never create it)."""
        return table_exists(self.client, silver_db(), self.table.name)

    def _locks(self) -> Locks:
        if self.locks is None:
            raise ConfigError(f"silver.{self.table.name}: a build that writes needs locks.")
        return self.locks

    def create(self) -> None:
        """Migrate, check the table against its YAML, finish crashed publishes, drop orphans.

        Silver's pending changesets are applied first (``silver.ddl``; in an environment to
        its tables, ``change/env_ddl.py``); a table that is not
        what its YAML declares stops the build (``silver.schema``). chDB did the recovery
        when it was opened; a ClickHouse server is recovered here, by
        every run that writes (each table under its publication lock).
        """
        if current():  # production's pending changesets run on the environment's tables
            from onering_assets.change import env_ddl

            env_ddl.apply_silver(self.client, self._locks(), current())
        else:
            ddl.apply_once(self.client, self._locks())
        schema.verify(self.client, self.table)
        recovery.recover(self.client, self._locks())

    def stage(self) -> None:
        self._held.enter_context(
            self._locks().hold(
                recovery.stage_lock(self.table.name, self.run),
                what=f"Staging of silver.{self.table.name} by run {self.run}",
            )
        )
        # staged_selects checks each month file's footer; reading() names damage beyond it.
        selects, params = staged_selects(self.table, self.lake, self.partitions)
        with self.lake.reading():
            for statement in plan.stage_statements(self.table, selects, self.names):
                self.client.command(statement, parameters=params)

    def _audited(self, staged: bool) -> Audited:
        names = self.names
        rows, rejects = (
            (names.stage_name, names.rejects_stage_name)
            if staged
            else (names.table, names.rejects_name)
        )
        sources, params = bronze_sources(self.table, self.lake, self.partitions)
        bronze_sql = sources[self.table.upstream[0][1]]
        return Audited(self.table, rows, rejects, bronze_sql, params, self.partitions)

    def checks(self, *, staged: bool) -> list[Outcome]:
        """The SQL checks, on staging (``staged``) or on what is published."""
        audited = self._audited(staged)
        with self.lake.reading():
            return audit(self.client, audited)

    def suite(self, *, staged: bool) -> Outcome | None:
        """The table's Great Expectations suite, if it has one."""
        if not self.table.ge_suite or not any(
            d.name == GE_SUITE for d in silver_checks(self.table)
        ):
            return None
        frame = self.client.query_df(f"SELECT * FROM {self._audited(staged).rows_table}")
        return run_suite(self.table.ge_suite, frame)

    def audit(self, *, staged: bool) -> list[Outcome]:
        """Every check."""
        suite = self.suite(staged=staged)
        return [*self.checks(staged=staged), *([suite] if suite else [])]

    def keep_failed_rejects(self) -> str:
        """Keep this failed build's rejects as evidence; return the query that shows them."""
        for statement in plan.keep_failed_rejects(self.names):
            self.client.command(statement, parameters={"run_id": self.run_id})
        return (
            f"SELECT _partition, _reject_reason, _raw FROM {silver_db()}."
            f"{self.names.failed_rejects_name}"
            f" WHERE _run_id = '{self.run_id}'"
        )

    def rejects_query(self) -> str:
        """The query that shows the rejects this build publishes."""
        where = ""
        if self.table.partitioned and self.partitions:
            first, last = min(self.partitions), max(self.partitions)
            where = (
                f" WHERE _partition = '{first}'"
                if first == last
                else f" WHERE _partition BETWEEN '{first}' AND '{last}'"
            )
        return (
            f"SELECT _partition, _reject_reason, _raw FROM {silver_db()}.{self.names.rejects_name}"
            f"{where}"
        )

    def staged_reject_reasons(self) -> dict[str, int]:
        """Rejected rows of this build per reason, before publishing."""
        result = self.client.query(
            f"SELECT _reject_reason, count() FROM {self.names.rejects_stage} "
            "GROUP BY _reject_reason ORDER BY count() DESC, _reject_reason"
        )
        return {str(r): int(n) for r, n in result.result_rows}

    def diff(self) -> DataDiff:
        """The staged rows against the published ones of the same months (by key)."""
        names = self.names
        published = names.target
        if not self.published():
            old = datadiff.empty(names.stage)
        elif self.table.partitioned:
            months = ", ".join(f"'{month_key(p)}'" for p in self.partitions or [])
            old = f"(SELECT * FROM {published} WHERE _partition IN ({months or 'NULL'}))"
        else:
            old = published
        # A column the published table does not have yet is all new: nothing to compare.
        have = self._published_columns()
        columns = [(c.name, c.type) for c in self.table.columns if not have or c.name in have]
        query = datadiff.diff_query(
            names.stage, old, self.table.key, columns, "clickhouse", partition="_partition"
        )
        return datadiff.parse_row(self.client.query(query).result_rows[0], columns)

    def _published_columns(self) -> set[str]:
        result = self.client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            parameters={"db": silver_db(), "t": self.table.name},
        )
        return {str(r[0]) for r in result.result_rows}

    def rows_by_partition(self) -> dict[str, int]:
        """Staged rows per month (``""`` for a whole table), before publishing."""
        result = self.client.query(
            f"SELECT _partition, count() FROM {self.names.stage} GROUP BY _partition"
        )
        return {p: int(n) for p, n in result.result_rows}

    def publish(self) -> None:
        """Journal, then swap every month of the table and its rejects (see journal.py).

        Under the table's publication lock, a crashed earlier publish of the table is
        finished first, so an older version can never be rolled forward over this one.
        """
        name = self.table.name
        parts = self.partitions or [] if self.table.partitioned else None
        payload = {"partitions": parts, **({"env": current()} if current() else {})}
        entry = journal.Entry(self.run, "silver", name, payload)
        jr = journal.ClickHouseJournal(self.client)
        apply, cleanup = recovery.applier(self.client)
        with self._locks().hold(recovery.publish_lock(name), what=f"Publishing silver.{name}"):
            recovery.recover_table(self.client, jr, name)
            journal.publish(jr, entry, apply, cleanup)

    def drop(self) -> None:
        """Drop the run's staging and release its stage lock.

        Staging that a pending journal entry names is kept: a publish that failed half-way
        (an error, not a crash) is rolled forward from it like a crashed one.
        """
        try:
            names = self.names
            pending = journal.ClickHouseJournal(self.client).pending("silver", self.table.name)
            keep = any(e.run == self.run for e in pending)
            for statement in plan.drop_work_tables(names):
                if not keep or names.candidates in statement:
                    self.client.command(statement)
        finally:
            self._held.close()

    def totals(self) -> tuple[int, int]:
        """Rows and rejected rows in the published tables."""
        names = self.names
        rows = self.client.query(f"SELECT count() FROM {names.target}").result_rows[0][0]
        rejects = self.client.query(f"SELECT count() FROM {names.rejects}").result_rows[0][0]
        return int(rows), int(rejects)
