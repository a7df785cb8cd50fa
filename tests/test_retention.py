"""Bounded growth: run history and quarantine are pruned, the latest state never is."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from onering_assets.definitions import build_definitions
from onering_assets.resources import LakeResource
from onering_assets.retention import Retention, collect, prune_quarantine
from onering_assets.runner import envs_root, execute, instance_for
from tests.conftest import settings_for

AIRLINES = dg.AssetKey(["bronze", "airlines"])
AIRPORTS = dg.AssetKey(["bronze", "airports"])


def test_runs_are_pruned_but_the_latest_state_stays(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "state", None)
    defs = build_definitions(settings)
    lake = LakeResource(url=settings.lake_dir.as_uri())
    with dg.instance_for_test() as instance:
        first = execute(defs, instance, assets={AIRPORTS}, progress=False)
        for _ in range(5):
            assert execute(defs, instance, assets={AIRLINES}, progress=False).success
        assert instance.get_runs_count() == 6

        done = collect(instance, defs, lake, Retention(keep_runs=2, quarantine_days=30))

        remaining = {r.run_id for r in instance.get_runs()}
        # The two newest runs, plus the older run that holds airports' only materialization.
        assert len(remaining) == 3
        assert first.run_id in remaining
        assert len(done.runs_deleted) == 3
        assert not remaining & set(done.runs_deleted)
        latest = instance.get_latest_materialization_event(AIRPORTS)
        assert latest is not None and latest.run_id == first.run_id
        assert instance.get_latest_materialization_event(AIRLINES) is not None

        again = collect(instance, defs, lake, Retention(keep_runs=2, quarantine_days=30))
        assert again.runs_deleted == []


def test_old_quarantine_is_deleted_and_recent_kept(tmp_path: Path) -> None:
    lake = LakeResource(url=(tmp_path / "lake").as_uri())
    table = pa.table({"x": ["1"]})
    old = Path(lake.quarantine("bronze", "flights", "run-old", "2013-01", table))
    recent = Path(lake.quarantine("bronze", "flights", "run-new", "2013-01", table))
    long_ago = time.time() - 40 * 86400
    os.utime(old, (long_ago, long_ago))

    deleted = prune_quarantine(lake, days=30)

    assert deleted == ["quarantine/bronze/flights/run-old"]
    assert not old.parent.exists()
    assert recent.exists()


def test_an_environments_runs_are_pruned_in_its_own_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`onering gc` bounds each environment's run history (its own Dagster instance) as it
    bounds production's, and leaves production's instance alone."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))  # instance_for sets it
    settings = settings_for(tmp_path / "state", None)
    defs = build_definitions(settings)
    lake = LakeResource(url=settings.lake_dir.as_uri())
    with instance_for(settings, "dev") as dev:
        for _ in range(3):
            assert execute(defs, dev, assets={AIRLINES}, progress=False).success
        newest = dev.get_runs()[0].run_id
    (envs_root(settings) / "Not An Env" / "dagster").mkdir(parents=True)  # skipped
    with dg.instance_for_test() as production:
        assert execute(defs, production, assets={AIRLINES}, progress=False).success
        assert execute(defs, production, assets={AIRLINES}, progress=False).success

        done = collect(production, defs, lake, Retention(keep_runs=1), settings=settings)

        assert production.get_runs_count() == 1  # its newest
        assert list(done.env_runs_deleted) == ["dev"] and len(done.env_runs_deleted["dev"]) == 2
    with instance_for(settings, "dev") as dev:
        assert [r.run_id for r in dev.get_runs()] == [newest]
