"""One Silver build as plain steps: create, stage, audit, publish, drop.

The asset runs these in order (yielding the audit between audit and publish); the
benchmark's raw baseline runs the same steps without Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from onering_assets.catalog import SqlTable
from onering_assets.checks.ge import run_suite
from onering_assets.checks.names import GE_SUITE
from onering_assets.checks.outcome import Outcome
from onering_assets.checks.specs import silver_checks
from onering_assets.partitions import MONTHLY
from onering_assets.resources import LakeResource
from onering_assets.silver import plan
from onering_assets.silver.audit import Audited, audit

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def bronze_sources(
    table: SqlTable, lake: LakeResource, partitions: list[str] | None, tag: str = ""
) -> tuple[dict[str, str], dict[str, str]]:
    """Lake table functions for each Bronze table the SQL reads, and their parameters.

    ``tag`` keeps parameter names apart when several sources share one statement list.
    """
    sources, params = {}, {}
    for i, (_, name) in enumerate(table.upstream):
        fn, fn_params = lake.clickhouse_source("bronze", name, partitions)
        for param, value in fn_params.items():
            fn = fn.replace(f"{{{param}:", f"{{{param}_{i}{tag}:")
            params[f"{param}_{i}{tag}"] = value
        sources[name] = fn
    return sources, params


def staged_selects(
    table: SqlTable, lake: LakeResource, partitions: list[str] | None
) -> tuple[list[str], dict[str, str]]:
    """The declared SELECT once per month (or once for a whole table), with parameters."""
    selects, params = [], {}
    for i, part in enumerate(partitions or [None]):
        sources, part_params = bronze_sources(table, lake, [part] if part else None, f"_p{i}")
        selects.append(plan.source_sql(table, sources))
        params.update(part_params)
    return selects, params


def published_partitions(table: SqlTable, lake: LakeResource) -> list[str]:
    """Months whose Bronze input is in the lake (what checks run alone can audit)."""
    name = table.upstream[0][1]
    return [p for p in MONTHLY.get_partition_keys() if lake.exists("bronze", name, p)]


@dataclass
class SilverBuild:
    """One table's build over some months (``None``: the whole table)."""

    client: Client
    table: SqlTable
    lake: LakeResource
    partitions: list[str] | None

    @property
    def names(self) -> plan.SilverNames:
        return plan.SilverNames(self.table.name)

    def has_input(self) -> bool:
        if self.table.partitioned:
            return bool(self.partitions)
        return self.lake.exists("bronze", self.table.upstream[0][1])

    def create(self) -> None:
        for statement in plan.create_statements(self.table):
            self.client.command(statement)

    def stage(self) -> None:
        selects, params = staged_selects(self.table, self.lake, self.partitions)
        for statement in plan.stage_statements(self.table, selects):
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
        return audit(self.client, self._audited(staged))

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

    def rows_by_partition(self) -> dict[str, int]:
        """Staged rows per month (``""`` for a whole table), before publishing."""
        result = self.client.query(
            f"SELECT _partition, count() FROM {self.names.stage} GROUP BY _partition"
        )
        return {p: int(n) for p, n in result.result_rows}

    def publish(self) -> None:
        for statement, settings in plan.publish_statements(self.table, self.partitions):
            self.client.command(statement, settings=settings)

    def drop(self) -> None:
        for statement in plan.drop_work_tables(self.table):
            self.client.command(statement)

    def totals(self) -> tuple[int, int]:
        """Rows and rejected rows in the published tables."""
        names = self.names
        rows = self.client.query(f"SELECT count() FROM {names.target}").result_rows[0][0]
        rejects = self.client.query(f"SELECT count() FROM {names.rejects}").result_rows[0][0]
        return int(rows), int(rejects)
