"""The catalog outbox on its own: pending runs, the ledger, its locks, from several processes.

Real files and real ``flock``s; concurrent writers are separate processes.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from onering_assets.lineage.outbox import MISSING, Outbox, PublishBusyError, outbox_for
from onering_assets.settings import CatalogSettings, Settings


def test_runs_are_pending_in_order_once_until_marked(tmp_path: Path) -> None:
    outbox = outbox_for(tmp_path)
    assert outbox.folder == tmp_path / "catalog"
    assert outbox.pending() == [] and outbox.last() is None
    for run_id in ("a", "b", "a", "c"):
        outbox.record(run_id)
    assert outbox.pending() == ["a", "b", "c"]
    outbox.mark(["b"])
    outbox.mark(["c"], MISSING)
    assert outbox.pending() == ["a"]
    assert outbox.delivered() == {"b", "c"}
    # pending is compacted: delivered runs leave the file, recorded ones stay
    assert outbox.pending_path.read_text().split() == ["a"]
    outbox.record("b")  # the sensor seeing a run the runner published: still delivered
    assert outbox.pending() == ["a"]
    ledger = [line.split("\t") for line in outbox.ledger_path.read_text().splitlines()]
    assert [(row[0], row[2]) for row in ledger] == [("b", "published"), ("c", "missing")]


def test_the_last_result_is_kept(tmp_path: Path) -> None:
    outbox = outbox_for(tmp_path)
    outbox.write_last({"ok": False, "message": "catalog down"})
    last = outbox.last()
    assert last is not None and last["message"] == "catalog down" and last["at"].endswith("+00:00")


def _record_many(folder: str, prefix: str, count: int) -> None:
    outbox = Outbox(Path(folder))
    for i in range(count):
        outbox.record(f"{prefix}-{i}")


def _mark_many(folder: str, count: int) -> None:
    outbox = Outbox(Path(folder))
    for i in range(count):
        outbox.mark([f"w0-{i}"])


def test_no_recorded_run_is_lost_to_a_concurrent_compaction(tmp_path: Path) -> None:
    """Three processes append while a fourth marks runs (each mark rewrites ``pending``)."""
    folder = str(tmp_path / "catalog")
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=_record_many, args=(folder, f"w{n}", 200)) for n in range(3)]
    marker = spawn.Process(target=_mark_many, args=(folder, 100))
    for p in [*writers, marker]:
        p.start()
    for p in [*writers, marker]:
        p.join(60)
        assert p.exitcode == 0
    outbox = Outbox(Path(folder))
    expected = {f"w{n}-{i}" for n in range(3) for i in range(200)}
    assert set(outbox.pending()) | outbox.delivered() == expected
    assert outbox.delivered() == {f"w0-{i}" for i in range(100)}
    assert set(outbox.pending()) == expected - outbox.delivered()


def _hold_publish_lock(folder: str, seconds: float) -> None:
    with Outbox(Path(folder)).publishing(timeout_s=5):
        Path(folder, "held").touch()
        time.sleep(seconds)


def test_a_second_publisher_waits_at_most_its_timeout(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold_publish_lock, args=(str(folder), 3.0)
    )
    holder.start()
    deadline = time.monotonic() + 30
    while not (folder / "held").exists():
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    started = time.monotonic()
    with (
        pytest.raises(PublishBusyError, match=r"held by another publish after 0\.5 s"),
        Outbox(folder).publishing(timeout_s=0.5),
    ):
        pass
    assert 0.4 < time.monotonic() - started < 2.0
    holder.join(30)
    with Outbox(folder).publishing(timeout_s=1):  # released when the holder ended
        pass


def test_catalog_settings_are_read_when_asked(tmp_path: Path) -> None:
    assert not CatalogSettings.from_env({}).configured
    assert CatalogSettings.from_env({"ONERING_OPENMETADATA_URL": "http://om/api"}).configured
    assert CatalogSettings.from_env({"ONERING_OPENLINEAGE_FILE": "/tmp/ol.jsonl"}).configured
    via_om = {"ONERING_OPENLINEAGE_TARGET": "openmetadata", "ONERING_OPENMETADATA_URL": "u"}
    assert CatalogSettings.from_env(via_om).openlineage == "OpenMetadata's endpoint"
    settings = CatalogSettings.from_env(
        {"ONERING_CATALOG_BUDGET": "5", "ONERING_CATALOG_ATTEMPTS": "2"}
    )
    assert (settings.budget_s, settings.attempts, settings.timeout_s) == (5.0, 2, 120.0)
    from onering_assets.errors import ConfigError

    for name, value in (("ONERING_CATALOG_TIMEOUT", "soon"), ("ONERING_CATALOG_BUDGET", "0")):
        with pytest.raises(ConfigError, match=f"{name}={value!r} must be a positive number"):
            CatalogSettings.from_env({name: value})
    assert Settings(profile="local", state_dir=tmp_path).catalog_dir == tmp_path / "catalog"
