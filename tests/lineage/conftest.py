"""Fixtures shared by the lineage tests: one airlines state for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lineage.airlines_runs import build_airlines_state


@pytest.fixture(scope="session")
def airlines_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs of the airlines tables (one tagged as Airflow's, one failing); read only."""
    return build_airlines_state(tmp_path_factory)
