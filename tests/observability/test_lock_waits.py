"""Store lock waits: a step's wait for a lock reaches its metadata and the metrics.

What it proves: while another process holds Bronze airlines' publication lock for a few
seconds, the real run's step waits for it; the materialization records the wait under
``lock_wait_seconds`` (kind ``publish``), and ``onering_store_lock_wait_seconds`` exports
it for that asset; a run nobody blocks records only a short wait.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from prometheus_client.parser import text_string_to_metric_families

from onering_assets.definitions import build_definitions
from onering_assets.observability.collector import exposition
from onering_assets.runner import execute
from tests.conftest import settings_for

AIRLINES = dg.AssetKey(["bronze", "airlines"])
HOLD_S = 4.0
HOLDER = """
import sys, time
from pathlib import Path
from onering_assets.resources.locks import FileLocks
with FileLocks(Path(sys.argv[1])).hold("publish:bronze.airlines", what="a test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def waits(instance: dg.DagsterInstance) -> tuple[dict, float]:
    """The latest materialization's lock waits, and the exported seconds for its publish lock."""
    event = instance.get_latest_materialization_event(AIRLINES)
    assert event is not None and event.asset_materialization is not None
    recorded = event.asset_materialization.metadata["lock_wait_seconds"].value
    assert isinstance(recorded, dict)
    exported = 0.0
    for family in text_string_to_metric_families(exposition(instance)):
        for sample in family.samples:
            if sample.name == "onering_store_lock_wait_seconds_total" and sample.labels == {
                "asset": "bronze/airlines",
                "layer": "bronze",
                "lock": "publish",
            }:
                exported = sample.value
    return recorded, exported


def test_a_step_blocked_by_a_held_lock_records_and_exports_its_wait(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "state", None)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        free = execute(defs, instance, assets={AIRLINES}, progress=False)
        assert free.success, free.failures
        recorded, exported = waits(instance)
        assert 0 <= recorded["publish"] < 1.0 and exported == recorded["publish"]

        locks = settings.lake_dir / "_locks"
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(locks), str(HOLD_S)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            started = time.monotonic()
            blocked = execute(defs, instance, assets={AIRLINES}, progress=False)
            elapsed = time.monotonic() - started
        finally:
            holder.wait(timeout=30)
        assert blocked.success, blocked.failures
        recorded_after, exported_after = waits(instance)
        waited = recorded_after["publish"]
        # It waited for most of the hold (the run's start-up before the publish overlapped).
        assert HOLD_S - 2.5 < waited <= elapsed, (waited, elapsed)
        # Counters add up over runs: the free run's short wait, then this one.
        assert abs(exported_after - (recorded["publish"] + waited)) < 0.01
