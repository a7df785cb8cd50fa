"""Pipeline bench, the Dagster side: full ``runner.execute`` runs over every materializable
asset in one worker process, with every write to the event log storage timed, and the unit
costs behind the overhead (job subset, one event write)."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.dagster_log import EventStoreTimer, event_store_seconds, run_phases, step_seconds
from bench.harness import peak_rss_mb
from bench.pipeline_floor import fingerprint
from bench.pipeline_scope import FIRST, LAST, LAYERS, Stores

if TYPE_CHECKING:
    import dagster as dg


def run_keys(defs: dg.Definitions) -> set[dg.AssetKey]:
    """Every materializable asset, or with ``ONERING_BENCH_SCOPE=medallion`` (bench.pipeline's
    default) the Bronze, Silver and Gold ones only: the work raw and the floor do."""
    keys = set(defs.resolve_asset_graph().materializable_asset_keys)
    if os.environ.get("ONERING_BENCH_SCOPE", "all") == "medallion":
        keys = {k for k in keys if k.path[0] in LAYERS}
    return keys


def dagster_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, store_timer: EventStoreTimer
) -> dict[str, Any]:
    from onering_assets import runner

    keys = run_keys(defs)
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
    probes = dagster_probes(defs, instance, runs[-1]["run_id"])
    return {
        "import_seconds": imported - started,
        "build_seconds": built - imported,
        "runs": runs,
        "rss": rss,
        "probes": probes,
        # What the engine floor must match (bench/pipeline_floor.py), off the clock.
        "fingerprint": fingerprint(Stores.for_state(state_dir, source_dir)),
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
