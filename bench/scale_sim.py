"""Past one machine, simulated here: what OneRing's planning costs at sizes it cannot run.

    python -m bench.scale_sim [--export-sizes 10000,30000,100000] [--parse-sizes 10000,100000]
        [--one-file-sizes 100000]
        [--dagster-sizes 1000,2000,4000] [--dagster-plain-sizes 10000,30000]
        [--copies 1,10,100] [--years 10] [--skip-storage] [--keep]

Every simulation runs in its own fresh interpreter (this module re-executed with
``--worker``), so each reports the peak RSS of the process that did it:

- **bridge export** of synthetic layered graphs (``bench.bridge_manifests``): the render
  and write of the DAG folder (``scale_sim_export.render_export``), Dagster definitions
  and the bridge's snapshot of them (``dagster_export``, with checks and without), and
  Airflow 3.3 parsing the rendered folder (``parse_folder``);
- **backfill of ``--years`` of daily partitions, planned without running**, over OneRing's
  own medallion graph (``scale_sim_defs.medallion_manifest``) ``--copies`` times over:
  Dagster's backfill target and first daemon tick under three backfill policies
  (``scale_sim_backfill.dagster_backfill``), the bridge snapshot of that daily graph, and
  the DAG runs and task instances Airflow's own timetable makes of it (``airflow_backfill``);
- **bytes per flight** in Bronze and Silver, measured on the real 1x data (``scale_sim_storage``).

``scale_sim_report`` prints the table and the capacity arithmetic ``docs/scaling.md``
quotes; everything goes to ``bench/results/scale_sim.json``, worker logs to
``bench/results/logs/``. About 3 minutes on this project's 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    LOGS_DIR,
    RESULTS_DIR,
    airflow_scratch_env,
    machine,
    peak_rss_mb,
    reexec,
    state_folder,
    write_results,
)

MODULE = "bench.scale_sim"
WORKERS = ("render", "dagster", "parse", "backfill", "snapshot_daily", "airflow", "storage")


def worker(argv: list[str]) -> None:
    """Run one simulation in this process and write its result and peak RSS as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=WORKERS, required=True)
    parser.add_argument("--assets", type=int, default=0)
    parser.add_argument("--grouping", default="group")
    parser.add_argument("--no-checks", action="store_true")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--days", type=int, default=3652)
    parser.add_argument("--policy", default="single_run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result: dict[str, Any]
    if args.worker in ("render", "dagster", "parse"):
        from bench.scale_sim_export import run

        result = run(args)
    elif args.worker == "backfill":
        from bench.scale_sim_backfill import dagster_backfill

        result = dagster_backfill(args.copies, args.days, args.policy)
    elif args.worker == "snapshot_daily":
        from bench.scale_sim_backfill import snapshot_daily

        result = snapshot_daily(args.copies, args.days)
    elif args.worker == "airflow":
        from bench.scale_sim_backfill import airflow_backfill

        result = airflow_backfill(args.days)
    else:
        from bench.scale_sim_storage import bytes_per_row

        result = bytes_per_row(args.folder)
    result |= {"rss": peak_rss_mb(), "worker_s": time.perf_counter() - started}
    args.out.write_text(json.dumps(result, default=str))


class Sim:
    """Spawns the workers; each result lands in ``results`` under its name."""

    def __init__(self, scratch: Path, console: Any) -> None:
        self.scratch = scratch
        self.console = console
        self.results: dict[str, dict[str, Any]] = {}
        self.env = airflow_scratch_env(scratch)

    def spawn(self, name: str, argv: list[str], timeout: float = 300.0) -> dict[str, Any]:
        out = self.scratch / f"{name}.json"
        log = LOGS_DIR / f"scale_sim_{name}.log"
        started = time.perf_counter()
        try:
            code: int | str = reexec(
                MODULE, [*argv, "--out", str(out)], env=self.env, log=log, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            code = "timeout"
        wall = time.perf_counter() - started
        if code != 0 or not out.exists():
            result: dict[str, Any] = {"failed": f"worker exit {code}; see {log}"}
        else:
            result = {**json.loads(out.read_text()), "process_s": wall}
        self.results[name] = result
        self.console.log(f"{name}: {'failed' if 'failed' in result else 'done'} in {wall:.1f} s")
        return result

    def render(self, n: int, grouping: str) -> Path:
        """The DAG folder of ``n`` assets (rendered once per size and grouping)."""
        folder = self.scratch / f"dags_{grouping}_{n}"
        if not folder.exists():
            argv = ["--worker", "render", "--assets", str(n), "--grouping", grouping]
            self.spawn(f"render_{grouping}_{n}", [*argv, "--folder", str(folder)])
        return folder

    def export(self, sizes: list[int], parse: list[int], one_file: list[int]) -> None:
        for n in sizes:
            self.render(n, "group")
        for grouping, ns in (("group", parse), ("one", one_file)):
            for n in ns:
                folder = self.render(n, grouping)
                argv = ["--worker", "parse", "--folder", str(folder), "--repeat", "1"]
                self.spawn(f"parse_{grouping}_{n}", argv)

    def dagster(self, checked: list[int], plain: list[int]) -> None:
        for n in checked:
            self.spawn(f"dagster_{n}", ["--worker", "dagster", "--assets", str(n)])
        for n in plain:
            self.spawn(
                f"dagster_{n}_nochecks", ["--worker", "dagster", "--assets", str(n), "--no-checks"]
            )

    def backfill(self, copies: list[int], days: int) -> None:
        from bench.scale_sim_defs import POLICIES

        for c in copies:
            for policy in POLICIES:
                argv = ["--worker", "backfill", "--copies", str(c), "--days", str(days)]
                self.spawn(f"backfill_{c}_{policy}", [*argv, "--policy", policy])
            argv = ["--worker", "snapshot_daily", "--copies", str(c), "--days", str(days)]
            self.spawn(f"snapshot_daily_{c}", argv)
        self.spawn("airflow", ["--worker", "airflow", "--days", str(days)])

    def storage(self) -> None:
        folder = self.scratch / "storage"
        folder.mkdir()
        self.spawn("storage", ["--worker", "storage", "--folder", str(folder)])


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        worker(argv)
        return
    parser = argparse.ArgumentParser(description="OneRing past one machine: simulations")
    parser.add_argument("--export-sizes", type=ints, default=ints("10000,30000,100000"))
    parser.add_argument("--parse-sizes", type=ints, default=ints("10000,100000"))
    parser.add_argument("--one-file-sizes", type=ints, default=ints("100000"))
    parser.add_argument("--dagster-sizes", type=ints, default=ints("1000,2000,4000"))
    parser.add_argument("--dagster-plain-sizes", type=ints, default=ints("10000,30000"))
    parser.add_argument("--copies", type=ints, default=ints("1,10,100"))
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--skip-storage", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "scale_sim.json")
    args = parser.parse_args(argv)
    from rich.console import Console

    from bench.scale_sim_defs import years_of_days
    from bench.scale_sim_report import analyze, print_report

    console = Console(stderr=True)
    started = time.perf_counter()
    days = years_of_days(args.years)
    with state_folder("onering-bench-scale-", args.keep, console.log) as scratch:
        sim = Sim(scratch, console)
        sim.export(args.export_sizes, args.parse_sizes, args.one_file_sizes)
        sim.dagster(args.dagster_sizes, args.dagster_plain_sizes)
        sim.backfill(args.copies, days)
        if not args.skip_storage:
            sim.storage()
    payload = {
        "machine": machine(dagster="dagster", airflow="apache-airflow"),
        "command": "python -m bench.scale_sim " + " ".join(argv),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg(),
        "years": args.years,
        "days": days,
        "results": sim.results,
        "analysis": analyze(sim.results),
        "bench_seconds": time.perf_counter() - started,
    }
    print_report(payload)
    write_results(args.out, payload, console)


if __name__ == "__main__":
    main()
