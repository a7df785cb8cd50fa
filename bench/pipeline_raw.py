"""Pipeline bench, the same work without Dagster ("raw"): the same functions and statements
the assets run (Bronze stamp/split/checks/write, Silver create/stage/audit/publish/drop,
Gold compute in ClickHouse, COPY to a temp stage, audit, DELETE/INSERT in one
transaction), timed per asset, with the time spent in Great Expectations suites apart."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import current_rss_mb, peak_rss_mb, peak_rss_since_reset_mb, reset_peak_rss
from bench.pipeline_gold import gold_design
from bench.pipeline_scope import Stores, months

if TYPE_CHECKING:
    from onering_assets.catalog import BronzeTable, SqlTable
    from onering_assets.checks.outcome import Outcome
    from onering_assets.resources import (
        ClickHouseResource,
        LakeResource,
        PostgresResource,
        SourceResource,
    )


# --------------------------------------------------------------------------- timings


@dataclass
class AssetTiming:
    """Wall time of one asset's work in the raw run, and the part spent in checks and GX."""

    seconds: float = 0.0
    checks: float = 0.0
    gx: float = 0.0
    rows: int = 0
    rss: dict[str, float] = field(default_factory=dict)


@dataclass
class RawTimer:
    """Per-asset timings of one raw run, keyed like Dagster asset keys (``silver/flights``)."""

    assets: dict[str, AssetTiming] = field(default_factory=dict)
    setup: float = 0.0

    @contextlib.contextmanager
    def asset(self, key: str) -> Iterator[AssetTiming]:
        timing = self.assets.setdefault(key, AssetTiming())
        before = current_rss_mb()
        reset_peak_rss()
        started = time.perf_counter()
        try:
            yield timing
        finally:
            timing.seconds += time.perf_counter() - started
            timing.rss = {
                **peak_rss_mb(),
                "before_mb": before,
                "step_peak_mb": peak_rss_since_reset_mb(),
                "current_mb": current_rss_mb(),
            }

    @staticmethod
    @contextlib.contextmanager
    def part(timing: AssetTiming, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(timing, kind, getattr(timing, kind) + time.perf_counter() - started)

    def as_dict(self) -> dict[str, Any]:
        total = sum(t.seconds for t in self.assets.values()) + self.setup
        gx = sum(t.gx for t in self.assets.values())
        return {
            "seconds": total,
            "seconds_excl_gx": total - gx,
            "gx_seconds": gx,
            "checks_seconds": sum(t.checks for t in self.assets.values()),
            "setup_seconds": self.setup,
            "steps": {k: vars(t) for k, t in self.assets.items()},
            "rows": {k: t.rows for k, t in self.assets.items()},
        }


def _raise_on_blocking(key: str, decls: list[Any], outcomes: list[Outcome]) -> None:
    from onering_assets.checks.outcome import failures_message
    from onering_assets.checks.specs import blocking_failures

    failures = blocking_failures(decls, outcomes)
    if failures:
        raise RuntimeError(f"{key}: blocking checks failed\n{failures_message(failures)}")


# --------------------------------------------------------------------------- raw: bronze


def raw_bronze(
    table: BronzeTable, source: SourceResource, lake: LakeResource, batch_id: str, timer: RawTimer
) -> None:
    """What the Bronze asset does: land a piece at a time (stamp, split, stage), check, publish.

    The checks' time is their verdict at the end; their counting happens as pieces pass.
    """
    from onering_assets.bronze.landing import ingesting
    from onering_assets.checks.specs import bronze_checks

    decls = bronze_checks(table)
    with timer.asset(f"bronze/{table.name}") as timing:
        partitions = months() if table.partitioned else None
        with ingesting(table, lake, batch_id, partitions, lambda _: None) as ingest:
            ingest.land(source.land_chunks(table.name))
            with timer.part(timing, "checks"):
                results = ingest.checks()
            with timer.part(timing, "gx"):
                results += ingest.suite()
            _raise_on_blocking(f"bronze/{table.name}", decls, results)
            timing.rows = sum(ingest.publish().values())


# --------------------------------------------------------------------------- raw: silver


def raw_silver(
    table: SqlTable, ch: ClickHouseResource, lake: LakeResource, run_id: str, timer: RawTimer
) -> None:
    """What the Silver asset does, through the same steps: create, stage, audit, publish."""
    from onering_assets.checks.specs import silver_checks
    from onering_assets.silver.steps import SilverBuild

    decls = silver_checks(table)
    with timer.asset(f"silver/{table.name}") as timing:
        # The first Silver asset opens chDB, as in the Dagster run.
        build = SilverBuild(
            ch.get_client(),
            table,
            lake,
            months() if table.partitioned else None,
            run_id,
            ch.locks(),
        )
        build.create()
        try:
            build.stage()
            with timer.part(timing, "checks"):
                outcomes = build.checks(staged=True)
            with timer.part(timing, "gx"):
                suite = build.suite(staged=True)
            _raise_on_blocking(f"silver/{table.name}", decls, [*outcomes, *filter(None, [suite])])
            build.rows_by_partition()
            build.publish()
        finally:
            build.drop()
        timing.rows = build.totals()[0]


# --------------------------------------------------------------------------- raw: gold


def raw_gold(
    table: SqlTable,
    ch: ClickHouseResource,
    pg: PostgresResource,
    lake: LakeResource,
    timer: RawTimer,
) -> None:
    """What the Gold asset does: compute in ClickHouse, stage + audit + publish in Postgres."""
    from onering_assets.checks.specs import gold_checks
    from onering_assets.gold import publish
    from onering_assets.gold.assets import migrate
    from onering_assets.gold.audit import MartAudit

    decls = gold_checks(table)
    with timer.asset(f"gold/{table.name}") as timing:
        client = ch.get_client()
        migrate(pg)
        partitions = months() if table.partitioned else None
        result = publish.compute(client, table, partitions)
        with pg.connect() as conn:
            publish.stage(conn, table, result)
            mart = MartAudit.staged(conn, table, client, lake, partitions, result)
            with timer.part(timing, "checks"):
                outcomes = mart.checks()
            with timer.part(timing, "gx"):
                suite = mart.suite()
            _raise_on_blocking(f"gold/{table.name}", decls, [*outcomes, *filter(None, [suite])])
            timing.rows = publish.publish(conn, table, partitions)


# --------------------------------------------------------------------------- raw run


def raw_run(stores: Stores) -> dict[str, Any]:
    """One full Bronze -> Silver -> Gold run without Dagster; returns its timings."""
    from onering_assets.catalog import load_catalog

    catalog = load_catalog()
    timer = RawTimer()
    batch_id = str(uuid.uuid4())
    started = time.perf_counter()
    try:
        for bronze in catalog.bronze:
            raw_bronze(bronze, stores.source, stores.lake, batch_id, timer)
        for silver in catalog.silver:
            raw_silver(silver, stores.ch, stores.lake, batch_id, timer)
        for gold in catalog.gold:
            raw_gold(gold, stores.ch, stores.pg, stores.lake, timer)
    finally:
        closing = time.perf_counter()
        stores.ch.close()  # Dagster closes the client at resource teardown, once per run
        timer.setup += time.perf_counter() - closing
    return {**timer.as_dict(), "wall_seconds": time.perf_counter() - started}


def worker_raw(state_dir: Path, source_dir: Path | None, repeat: int) -> dict[str, Any]:
    """Warm up with one raw run, measure ``repeat`` raw runs, then the Gold design choice."""
    stores = Stores.for_state(state_dir, source_dir)
    runs = [raw_run(stores) for _ in range(1 + repeat)]
    rss_runs = peak_rss_mb()
    design = gold_design(stores, repeat)
    return {
        "runs": runs,
        "rss": rss_runs,
        "rss_after_gold_design": peak_rss_mb(),
        "gold_design": design,
    }
