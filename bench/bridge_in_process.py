"""Airflow bridge bench, the ``in_process`` worker: ``runner.run_keys`` per task in a warm
process (and once in a cold one), minus the Dagster steps' own time."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from bench.dagster_log import step_seconds
from bench.harness import timing_wrapper

IN_PROCESS_CALLS = 5


def call_run_keys(run_keys: Any, keys: list[str]) -> Any:
    """``run_keys`` with checks, whichever of its signatures (``checks=``/``what=``) is here."""
    import inspect

    params = inspect.signature(run_keys).parameters
    extra = {"checks": True} if "checks" in params else {"what": "assets"}
    return run_keys(keys, None, None, tags={}, **extra)


def timed_run(runner: Any, instance: Any, keys: list[str]) -> dict[str, Any]:
    """One ``run_keys`` call: wall time, its parts, and the steps' own time."""
    t: dict[str, float] = {}
    defs_module: Any = sys.modules["onering_assets.definitions"]
    build, execute = defs_module.build_definitions, runner.execute
    defs_module.build_definitions = timing_wrapper(build, t, "build_definitions")
    runner.execute = timing_wrapper(execute, t, "execute (subset + run)")
    try:
        started = time.perf_counter()
        summary = call_run_keys(runner.run_keys, keys)
        wall = time.perf_counter() - started
    finally:
        defs_module.build_definitions, runner.execute = build, execute
    steps = step_seconds(instance, summary.run_id)
    return {
        "wall_s": wall,
        "success": summary.success,
        "failures": summary.failures,
        "run_s": summary.seconds,
        "steps": steps,
        "steps_s": sum(steps.values()),
        "overhead_s": wall - sum(steps.values()),
        "events": len(instance.all_logs(summary.run_id)),
        **{f"{k}_s": v for k, v in t.items()},
    }


def worker_in_process(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    import onering_assets.definitions  # noqa: F401
    from onering_assets import runner
    from onering_assets.settings import Settings

    imported = time.perf_counter() - started
    instance = runner.instance_for(Settings.from_env())
    if args.cold:
        first = timed_run(runner, instance, ["silver/airlines"])
        return {"import_s": imported, "first_call": first, "process_s": imported + first["wall_s"]}
    setup = timed_run(runner, instance, ["bronze/airlines", "silver/airlines"])
    calls = [timed_run(runner, instance, ["silver/airlines"]) for _ in range(IN_PROCESS_CALLS)]
    return {"import_s": imported, "setup": setup, "calls": calls}


def summarize_in_process(result: dict[str, Any]) -> dict[str, Any]:
    if "failed" in result:
        return result
    calls = result["calls"]
    keys = [k for k in calls[0] if k.endswith("_s")]
    median = {k: statistics.median(c[k] for c in calls) for k in keys}
    return {**result, "median": median, "success": all(c["success"] for c in calls)}
