"""The one Jan–Feb 2013 Bronze + Silver state that tests/features and tests/ml start from.

A Dagster run lands and builds it (about 15 s on 2 cores); both folders' session fixtures
ask :func:`silver_state`, so a test process builds it once. Nothing writes to it: each
user copies it (:func:`copy_state`) and plants or builds on the copy.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import SourceFactory, run, settings_for

SILVER = {
    dg.AssetKey([layer, table])
    for layer in ("bronze", "silver")
    for table in ("flights", "weather")
}

RAM_DISK = Path("/dev/shm")


@contextmanager
def quick_instance() -> Iterator[dg.DagsterInstance]:
    """``dg.instance_for_test`` with its SQLite storage on a RAM disk when there is one.

    Every run event is a SQLite commit, and a commit on disk waits for fsync: creating an
    instance took 2.4 s on /tmp and 0.2 s on /dev/shm (measured here); a run's events
    likewise. The instance is the same; only its folder differs.
    """
    ram = RAM_DISK if RAM_DISK.is_dir() else None
    with (
        tempfile.TemporaryDirectory(dir=ram, prefix="onering-dagster-") as folder,
        dg.instance_for_test(temp_dir=folder) as instance,
    ):
        yield instance


# Per pytest session (its base temp folder): pytest's conftests cannot share one session
# fixture across sibling folders without the root conftest.
_built: dict[Path, Path] = {}


def silver_state(tmp_path_factory: pytest.TempPathFactory, make_source: SourceFactory) -> Path:
    """Bronze and Silver flights and weather for January and February 2013. Read only."""
    session = tmp_path_factory.getbasetemp()
    if session not in _built:
        state = tmp_path_factory.mktemp("silver-base") / ".onering"
        with quick_instance() as instance:
            summary = run(settings_for(state, make_source()), instance=instance, select=SILVER)
        assert summary.success, summary.failures
        _built[session] = state
    return _built[session]


def copy_state(state: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of a state folder (chDB's directory, the lake, Feast's files)."""
    copy = tmp_path_factory.mktemp(name) / ".onering"
    shutil.copytree(state, copy, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    return copy
