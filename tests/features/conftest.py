"""Feature tests' state: Bronze and Silver for January and February 2013, built once.

The build is tests/features/base.py's, shared with tests/ml. Each module copies it (chDB's
folder, the lake) so planted data stays in that module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from onering_assets.definitions import build_definitions
from onering_assets.features import steps
from onering_assets.features.views import View
from onering_assets.resources import LakeResource
from onering_assets.resources.feast import FeastResource, feast_resource
from onering_assets.runner import execute
from onering_assets.settings import Settings
from onering_assets.summary import RunSummary
from tests.conftest import SourceFactory
from tests.features import base


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """This module's Dagster instance (tests/conftest.py's, on a RAM disk: no fsync waits)."""
    with base.quick_instance() as inst:
        yield inst


@pytest.fixture(scope="session")
def silver_state(tmp_path_factory: pytest.TempPathFactory, make_source: SourceFactory) -> Path:
    """A state folder with Bronze and Silver flights and weather (Jan–Feb 2013). Read only."""
    return base.silver_state(tmp_path_factory, make_source)


@pytest.fixture(scope="module")
def state(silver_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own copy of the Silver state."""
    return base.copy_state(silver_state, tmp_path_factory, "features")


@pytest.fixture(scope="module")
def settings(state: Path) -> Settings:
    return Settings(profile="local", state_dir=state)


def feature_defs(settings: Settings, feast: FeastResource | None = None) -> dg.Definitions:
    """Every layer, the features included, with ``feast`` (default: the profile's store)."""
    return build_definitions(settings, resources={"feast": feast or feast_resource(settings)})


def feature_keys(defs: dg.Definitions, *names: str) -> set[dg.AssetKey]:
    """The features group's asset keys (only ``names`` when given)."""
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    return {k for k in keys if k.path[0] == "features" and (not names or k.path[1] in names)}


def run_features(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *names: str,
    checks_only: bool = False,
) -> RunSummary:
    keys = feature_keys(defs, *names)
    if not checks_only:
        return execute(defs, instance, assets=keys, progress=False)
    graph = defs.resolve_asset_graph()
    checks = {c for c in graph.asset_check_keys if c.asset_key in keys}
    return execute(defs, instance, assets=set(), checks=checks, progress=False)


def offline(settings: Settings, view: View) -> pd.DataFrame:
    """The view's offline rows as published in the lake."""
    return steps.read(LakeResource(url=settings.lake_dir.as_uri()), view).to_pandas()


def newest(rows: pd.DataFrame, view: View, **key: str) -> pd.Series:
    """The newest offline row of one entity."""
    mask = pd.Series(True, index=rows.index)
    for column, value in key.items():
        mask &= rows[column] == value
    return pd.DataFrame(rows[mask]).sort_values(by="event_timestamp").iloc[-1]
