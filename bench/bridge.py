"""Airflow bridge benchmark: DAG parse time vs Airflow's own floor, and in_process overhead.

    python -m bench.bridge [--sizes 250,1000,10000] [--repeat 5] [--timeout 60] [--keep]

What it measures, each piece in its own fresh process:

1. Airflow parse time of exported DAG folders: ``DagBag(dag_folder=..., safe_mode=True)``
   from ``airflow.dag_processing.dagbag`` with a throwaway ``AIRFLOW_HOME`` and
   ``AIRFLOW__CORE__LOAD_EXAMPLES=False``. One worker process per case imports Airflow once,
   calls ``gc.freeze()`` and forks one child per run (as Airflow's DagFileProcessorManager
   does); the child times only the ``DagBag`` construction. Airflow's own per-file
   ``core.dagbag_import_timeout`` (30 s) stays in force: a file that hits it is an import
   error, reported as such. Median of ``--repeat`` runs, for (a) the project's exported
   folder ``platform/orchestration/airflow/dags`` and (b) synthetic manifests (layers of
   width ~sqrt(n), each asset depending on 1-3 assets of the previous layer, seeded), in
   ``grouping="one"`` (a single DAG of n tasks) and ``grouping="group"`` (10 groups of
   consecutive layers, one DAG file each), written by ``airflow_bridge.export``.
2. Airflow's floor on the same manifest JSON: DAG files that ``json.load`` the manifest and
   build ``EmptyOperator`` tasks, wired with Airflow's ``set_upstream`` (one DAG, and one DAG
   per group) and without dependencies.
3. ours / floor and the per-task parse cost at every size, and an in-process breakdown of
   where the time goes (bridge import, manifest load, plan and its topological sort,
   operators, wiring through Airflow's ``set_upstream`` vs the relation sets directly, and
   the ``hash(dag)`` that ``set_upstream`` pays twice per edge).
4. The ``in_process`` per-task overhead: ``onering_assets.runner.run_keys(["silver/airlines"])``
   in a warm process against a state folder where bronze/airlines + silver/airlines were
   materialized once; median of 5 calls minus the Dagster steps' own time (event log
   STEP_START -> STEP_SUCCESS). Also one cold call in a fresh process, which is what an
   Airflow 3 task process pays.

A case stops repeating once it has used ``--budget`` seconds (at least one run), and a run
is killed after ``--timeout`` seconds and reported as such. The export side (``render`` +
``write``) is timed too.
The table is printed and everything is written to ``bench/results/bridge.json``; worker
logs go to ``bench/results/logs/``. The whole bench takes about 5 minutes on 2 cores.

Run it from the repo root as a module; each worker re-executes this module with ``-m``.
Modules: ``bridge_manifests`` (the DAG folders), ``bridge_parse``, ``bridge_phases`` and
``bridge_in_process`` (the three workers), ``bridge_report`` (analysis and tables).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.bridge_in_process import summarize_in_process, worker_in_process
from bench.bridge_manifests import (
    MANIFEST_FILE,
    REAL_DAGS,
    synthetic_manifest,
    write_floor,
    write_ours,
)
from bench.bridge_parse import describe, summarize_parse, worker_parse
from bench.bridge_phases import worker_phases
from bench.bridge_report import analyze, print_report
from bench.harness import (
    LOGS_DIR,
    RESULTS_DIR,
    airflow_scratch_env,
    machine,
    onering_env,
    reexec,
    state_folder,
    write_results,
)

MODULE = "bench.bridge"


# --------------------------------------------------------------------------- spawning


def run_worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["parse", "phases", "in_process"], required=True)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--no-gc-freeze", action="store_true")
    parser.add_argument("--wire-budget", type=float, default=12.0)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    work = {"parse": worker_parse, "phases": worker_phases, "in_process": worker_in_process}
    args.out.write_text(json.dumps(work[args.worker](args), default=str))


def spawn(
    name: str, args: list[str], env: dict[str, str], timeout: float, scratch: Path
) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; its output goes to bench/results/logs/."""
    log = LOGS_DIR / f"bridge_{name}.log"
    out = scratch / f"{name}.json"
    started = time.perf_counter()
    try:
        code: int | str = reexec(
            MODULE, [*args, "--out", str(out)], env=env, log=log, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        code = "timeout"
    if code != 0 or not out.exists():
        return {"failed": f"worker {name} exit {code}; see {log}"}
    return {**json.loads(out.read_text()), "process_s": time.perf_counter() - started}


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path, console: Any) -> None:
        self.args = args
        self.scratch = scratch
        self.console = console
        self.env = airflow_scratch_env(scratch, PYTHONDONTWRITEBYTECODE="1")

    def parse(self, name: str, folder: Path) -> dict[str, Any]:
        a = self.args
        argv = ["--worker", "parse", "--folder", str(folder), "--repeat", str(a.repeat)]
        argv += ["--timeout", str(a.timeout), "--budget", str(a.budget)]
        if a.no_gc_freeze:
            argv.append("--no-gc-freeze")
        worst = a.repeat * a.timeout + 120
        result = spawn(f"parse_{name}", argv, self.env, worst, self.scratch)
        self.console.log(f"{name}: {describe(result)}")
        return summarize_parse(result)

    def phases(self, name: str, folder: Path) -> dict[str, Any]:
        argv = ["--worker", "phases", "--folder", str(folder), "--wire-budget", "12"]
        result = spawn(f"phases_{name}", argv, self.env, self.args.timeout * 2, self.scratch)
        self.console.log(f"{name}: phases done in {result.get('process_s', 0):.1f} s")
        return result

    def real(self) -> dict[str, Any]:
        text = (REAL_DAGS / MANIFEST_FILE).read_text()
        grouping = json.loads(text)["render"].get("grouping", "group")
        floors = {}
        for label, group, wired in (("floor", grouping, True), ("floor_nodeps", "one", False)):
            folder = self.scratch / f"real_{label}"
            write_floor(folder, text, group, wired)
            floors[label] = self.parse(f"real_{label}", folder)
        return {
            "size": "real",
            "grouping": grouping,
            "ours": self.parse("real_ours", REAL_DAGS),
            **floors,
        }

    def synthetic(self, n: int) -> dict[str, Any]:
        result: dict[str, Any] = {"size": n}
        for grouping in ("one", "group"):
            folder = self.scratch / f"n{n}_ours_{grouping}"
            files = write_ours(folder, synthetic_manifest(n, grouping))
            text = (folder / MANIFEST_FILE).read_text()
            floor = self.scratch / f"n{n}_floor_{grouping}"
            write_floor(floor, text, grouping, wire=True)
            result[grouping] = {
                **files,
                "ours": self.parse(f"n{n}_ours_{grouping}", folder),
                "floor": self.parse(f"n{n}_floor_{grouping}", floor),
                "phases": self.phases(f"n{n}_{grouping}", folder),
            }
            if grouping == "one":
                nodeps = self.scratch / f"n{n}_floor_nodeps"
                write_floor(nodeps, text, "one", wire=False)
                result["floor_nodeps"] = self.parse(f"n{n}_floor_nodeps", nodeps)
        return result

    def in_process(self) -> dict[str, Any]:
        state = self.scratch / "onering_state"
        env = onering_env(state, base=self.env)
        warm = spawn("in_process_warm", ["--worker", "in_process"], env, 900, self.scratch)
        self.console.log(f"in_process warm: done in {warm.get('process_s', 0):.1f} s")
        cold = spawn(
            "in_process_cold", ["--worker", "in_process", "--cold"], env, 600, self.scratch
        )
        self.console.log(f"in_process cold: done in {cold.get('process_s', 0):.1f} s")
        return {"warm": summarize_in_process(warm), "cold": cold}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        run_worker(argv)
        return
    parser = argparse.ArgumentParser(description="OneRing Airflow bridge benchmark")
    parser.add_argument("--sizes", default="250,1000,10000", help="comma-separated asset counts")
    parser.add_argument("--repeat", type=int, default=5, help="parse runs per case (median)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per parse run")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument(
        "--no-gc-freeze", action="store_true", help="do not gc.freeze() before fork"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bridge.json")
    args = parser.parse_args(argv)
    args.repeat = max(1, args.repeat)
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    with state_folder("onering-bench-bridge-", args.keep) as scratch:
        bench = Bench(args, scratch, console)
        results = [bench.real()]
        results += [bench.synthetic(int(s)) for s in args.sizes.split(",") if s.strip()]
        in_process = {"warm": {"failed": "skipped"}, "cold": {"failed": "skipped"}}
        if not args.skip_in_process:
            in_process = bench.in_process()
    payload = {
        "machine": machine(),
        "repeat": args.repeat,
        "timeout_s": args.timeout,
        "budget_s": args.budget,
        "results": results,
        "analysis": analyze(results, args.timeout),
        "in_process": in_process,
        "bench_seconds": time.perf_counter() - started,
    }
    print_report(payload)
    write_results(args.out, payload, console)


if __name__ == "__main__":
    main()
