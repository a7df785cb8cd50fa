"""A state folder whose local Pulsar (pulsar-lite on 127.0.0.1) is stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from onering_assets.settings import Settings
from tests.conftest import settings_for

pytest.importorskip("pulsar", reason="pulsar-client is not installed (make setup installs it)")
pytest.importorskip("pulsar_lite", reason="pulsar-lite is not installed (make setup installs it)")


@pytest.fixture
def settings(tmp_path: Path, make_source) -> Iterator[Settings]:
    """January and February landed; the broker under <state>/pulsar stopped afterwards."""
    from onering_assets.resources.postgres import stop_embedded
    from onering_assets.stream import broker

    settings = settings_for(tmp_path / "state", make_source())
    yield settings
    broker.stop(settings.state_dir / "pulsar")
    stop_embedded(settings.postgres_dir)


@pytest.fixture
def url(settings: Settings) -> str:
    """The state's local broker, started as the stream asset would start it."""
    from onering_assets.stream import broker

    return broker.start(settings.state_dir / "pulsar").url


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """One per test: each test's "latest materialization" is its own."""
    with dg.instance_for_test() as inst:
        yield inst
