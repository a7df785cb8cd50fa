"""OpenLineage events of features and ML assets: lake containers, Feast views, the model.

A run record of one feature view's rows and view, the training set, the model (with its
gate's checks) and a drift report, on the real lineage document; its events are written by
the file transport and parsed back strictly (``ol_strict``), as in ``test_openlineage.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from onering_assets.lineage.openlineage import emit_run
from tests.lineage.airlines_runs import document_of
from tests.lineage.ol_strict import parse
from tests.lineage.test_openlineage import find

MODEL = "ml/flight_late_arrival"


ML_STEPS = (
    "features/carrier_stats_source",
    "features/carrier_stats",
    "ml/training_set",
    "ml/flight_late_arrival",
    "ml/drift_report",
)


def ml_record(document: dict) -> dict:
    """A Dagster run of one feature view, the training set, the model and a drift report."""
    run_id = str(uuid.uuid4())
    steps = [
        {
            "name": key.replace("/", "__"),
            "status": "SUCCESS",
            "start": f"2026-12-01T04:00:{2 * n:02d}.000+00:00",
            "end": f"2026-12-01T04:00:{2 * n + 1:02d}.000+00:00",
        }
        for n, key in enumerate(ML_STEPS)
    ]
    model = next(e for e in document["entities"] if e["key"] == MODEL)
    checks = [
        {
            "asset": MODEL,
            "name": c["name"],
            "passed": True,
            "severity": "ERROR",
            "summary": "passed",
            "failing": 0,
            "partition": None,
            "at": "2026-12-01T04:00:07.500+00:00",
        }
        for c in model["checks"]
    ]
    return {
        "run_id": run_id,
        "pipeline": "onering_dagster.onering",
        "execution_id": run_id,
        "status": "SUCCESS",
        "start": "2026-12-01T04:00:00.000+00:00",
        "end": "2026-12-01T04:00:10.000+00:00",
        "airflow": None,
        "partitions": [],
        "tasks": steps,
        "steps": steps,
        "materializations": [{"asset": key, "partitions": [], "rows": 100} for key in ML_STEPS],
        "checks": checks,
    }


@pytest.fixture(scope="module")
def document(airlines_state: Path) -> dict:
    doc = document_of(airlines_state)
    doc["runs"].append(ml_record(doc))
    return doc


@pytest.fixture(scope="module")
def events(document: dict, tmp_path_factory: pytest.TempPathFactory) -> list:
    """The ML run's events, written by the file transport and parsed back strictly."""
    path = tmp_path_factory.mktemp("ol-ml") / "events.jsonl"
    count = emit_run(document, document["runs"][-1], {"ONERING_OPENLINEAGE_FILE": str(path)})
    lines = path.read_text().splitlines()
    assert count == len(lines) > 0
    return [parse(line) for line in lines]


def test_feature_and_ml_assets_are_datasets_named_by_logical_service(
    document: dict, events: list
) -> None:
    run = document["runs"][-1]
    evs = events

    def done(key: str) -> Any:
        return find(evs, f"onering.{key.replace('/', '__')}", "COMPLETE")

    def names(datasets: list) -> set[tuple[str, str]]:
        return {(d.namespace, d.name) for d in datasets}

    lake, feast = "s3://onering-lake", "feast://onering_feast"
    source = done("features/carrier_stats_source")
    assert names(source.outputs) == {(lake, "features/carrier_stats")}
    assert names(source.inputs) == {("clickhouse://onering_clickhouse", "silver.flights")}
    view = done("features/carrier_stats")
    assert names(view.outputs) == {(feast, "onering.carrier_stats")}
    lineage = view.outputs[0].facets["columnLineage"].fields
    assert [(f.name, f.field) for f in lineage["carrier_late_rate_28d"].inputFields] == [
        ("features/carrier_stats", "carrier_late_rate_28d")
    ]
    training = done("ml/training_set")
    assert names(training.outputs) == {(lake, "ml/training_set")}
    assert {(feast, f"onering.{v}") for v in ("carrier_stats", "route_stats")} <= names(
        training.inputs
    )
    model = done(MODEL)
    (output,) = model.outputs
    assert (output.namespace, output.name) == ("mlflow://onering_mlflow", "flight_late_arrival")
    features = next(e for e in document["entities"] if e["key"] == MODEL)["mlmodel"]["features"]
    assert [(f.name, f.type) for f in output.facets["schema"].fields] == [
        (f["name"], f["type"]) for f in features
    ]
    assert output.facets["dataSource"].name == "onering_mlflow"
    trained = output.facets["columnLineage"].fields
    assert set(trained) == {f["name"] for f in features}
    assert [(f.name, f.field) for f in trained["dep_hour"].inputFields] == [
        ("ml/training_set", "dep_hour")
    ]
    assert names(model.inputs) == {(lake, "ml/training_set")}
    drift = done("ml/drift_report")
    assert names(drift.outputs) == {(lake, "ml/drift_report")}
    assert names(drift.inputs) == {
        (lake, "ml/training_set"),
        ("mlflow://onering_mlflow", "flight_late_arrival"),
    }
    gate = find(evs, "onering.ml__flight_late_arrival.checks", "COMPLETE")
    assertions = gate.inputs[0].inputFacets["dataQualityAssertions"].assertions
    assert sorted(a.assertion for a in assertions) == sorted(c["name"] for c in run["checks"])


def test_each_ml_job_run_starts_once_and_ends_once(events: list) -> None:
    by_run: dict[str, list[str]] = {}
    for event in events:
        by_run.setdefault(event.run.runId, []).append(event.eventType.value)
    assert all(states[0] == "START" and len(states) == 2 for states in by_run.values())
    assert len(by_run) == 1 + len(ML_STEPS) + 1  # the run, each asset, the model's checks
