"""Shared ML fixtures (owned by the training tests; ask before adding, keep them few).

- ``spark``: the process's one SparkSession (``local[*]``, as the spark resource asks), started
  once per test session: a JVM takes 5-15 s to start. Stopped at the end of the session.
  The training assets' own spark resource gets this running session.
- ``ml_base_state``: January and February 2013 in Bronze and Silver (flights, weather) built
  by a real Dagster run, plus every feature view built by ``features.steps.build_features``
  (offline Parquet in the lake, Feast's registry and SQLite online store). Built once per
  session and never written to: a module that plants data or trains works on its own copy
  (``copy_state``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.resources.spark import SparkResource
from onering_assets.settings import Settings
from tests.conftest import SourceFactory, run, settings_for

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SILVER = {
    dg.AssetKey([layer, table])
    for layer in ("bronze", "silver")
    for table in ("flights", "weather")
}


# The JVM's client compiler only: a test's small fits finish in half the time (Jan→Feb: fit
# 14 s instead of 22 s, start 7 s instead of 11 s, measured); the full year is slower with
# it (fit 50 s instead of 35 s), so the resource itself does not set it.
QUICK_JVM = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The session every Spark test and training asset in this process shares."""
    session = SparkResource(conf=QUICK_JVM).session()
    yield session
    session.stop()


def build_features(settings: Settings) -> dict[str, int]:
    """Every feature view of ``settings``' Silver: lake rows, Feast registry, online store."""
    from onering_assets.features.retrieval import feature_store
    from onering_assets.features.steps import build_features as build
    from onering_assets.features.views import load_views

    lake = LakeResource(url=settings.lake_dir.as_uri())
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        return build(client, lake, feature_store(settings), load_views())


@pytest.fixture(scope="session")
def ml_base_state(tmp_path_factory: pytest.TempPathFactory, make_source: SourceFactory) -> Path:
    """Jan–Feb 2013 Bronze + Silver (flights, weather) and the feature views. Read only."""
    state = tmp_path_factory.mktemp("ml-base") / ".onering"
    settings = settings_for(state, make_source())
    with dg.instance_for_test() as instance:
        summary = run(settings, instance=instance, select=SILVER)
    assert summary.success, summary.failures
    build_features(settings)
    return state


def copy_state(state: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of a state folder (chDB's directory, the lake, Feast's files)."""
    copy = tmp_path_factory.mktemp(name) / ".onering"
    shutil.copytree(state, copy, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    return copy
