"""Idempotence against the server's state: hand edits are repaired, a removed asset's edges
and entity are deleted, unmanaged entities are left alone, and the Airflow teardown's
``pipeline-status`` merges into the execution's status.

No OpenMetadata server can run on these machines; the loopback server of ``om_server.py``
stands in for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.catalog.om_fixture import call
from tests.catalog.om_server import OMServer
from tests.catalog.test_publish_support import (
    AIRFLOW_EXECUTION,
    assert_no_secret,
    catalog_edges,
    demo_document,
    need_om_env,
    publish,
    task_pipeline,
)

FLIGHTS = "onering_clickhouse.clickhouse.silver.flights"
ROUTES = "onering_postgres.onering.gold.route_performance"
HAND_MADE = "onering_clickhouse.clickhouse.silver.hand_made"


@dataclass
class Setup:
    work: Path
    document: dict[str, Any]
    server: OMServer


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The demo document published once to a fresh server."""
    need_om_env()
    work = tmp_path_factory.mktemp("idempotence")
    document = demo_document(work)
    (work / "document.json").write_text(json.dumps(document))
    server = OMServer(users=("onering-owner",), teams=("data-platform",)).start()
    try:
        first = publish(work / "document.json", server)
        assert first.code == 0, first.stderr
        yield Setup(work, document, server)
    finally:
        server.stop()


def _id(server: OMServer, entity_type: str, fqn: str) -> str:
    found = server.entity(entity_type, fqn)
    assert found is not None, fqn
    return found["id"]


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    """The document as if asset ``key`` were removed from the code."""
    doc = json.loads(json.dumps(document))
    doc["entities"] = [e for e in doc["entities"] if e["key"] != key]
    doc["edges"] = [e for e in doc["edges"] if key not in (e["from"], e["to"])]
    doc["runs"] = [r for r in doc["runs"] if all(c["asset"] != key for c in r["checks"])]
    return doc


def test_server_changes_are_repaired_removed_asset_deleted_unmanaged_left(setup: Setup) -> None:
    server = setup.server
    flights, routes = _id(server, "table", FLIGHTS), _id(server, "table", ROUTES)
    # A hand edit in the UI: the description changes, sourceHash does not.
    patch = [{"op": "replace", "path": "/description", "value": "typed in the UI"}]
    code, _ = call(
        server, "PATCH", f"/v1/tables/{flights}", patch, content_type="application/json-patch+json"
    )
    assert code == 200
    # A managed edge deleted by hand.
    weather = _id(server, "table", "onering_clickhouse.clickhouse.silver.weather")
    adw = _id(server, "table", "onering_postgres.onering.gold.airport_daily_weather")
    code, _ = call(server, "DELETE", f"/v1/lineage/table/{weather}/table/{adw}")
    assert code == 200
    # Someone else's table, with an edge from a managed one: never touched.
    columns = [{"name": "carrier", "dataType": "STRING"}]
    body = {
        "name": "hand_made",
        "databaseSchema": "onering_clickhouse.clickhouse.silver",
        "columns": columns,
    }
    code, made = call(server, "PUT", "/v1/tables", body)
    assert code == 201
    edge = {
        "edge": {
            "fromEntity": {"id": flights, "type": "table"},
            "toEntity": {"id": made["id"], "type": "table"},
        }
    }
    assert call(server, "PUT", "/v1/lineage", edge)[0] == 200
    before_unmanaged = server.entity("table", HAND_MADE)

    smaller = _without(setup.document, "gold/route_performance")
    path = setup.work / "smaller.json"
    path.write_text(json.dumps(smaller))
    server.reset_log()
    result = publish(path, server)
    assert result.code == 0, result.stderr
    log = [(r.method, r.path) for r in server.requests if r.method != "GET"]

    repaired = server.entity("table", FLIGHTS)
    assert repaired is not None
    assert (
        repaired["description"]
        == next(e for e in smaller["entities"] if e["fqn"] == FLIGHTS)["description"]
    )
    edges = server.edges()
    assert (
        "onering_clickhouse.clickhouse.silver.weather",
        "onering_postgres.onering.gold.airport_daily_weather",
    ) in edges
    # The removed asset: its edges, then the entity itself.
    assert server.entity("table", ROUTES) is None
    assert not [k for k in edges if ROUTES in k]
    deletes = [p for m, p in log if m == "DELETE"]
    assert f"/v1/lineage/table/{flights}/table/{routes}" in deletes
    assert deletes[-1].startswith(f"/v1/tables/{routes}")
    # The unmanaged table and its edge from a managed table are as they were.
    assert server.entity("table", HAND_MADE) == before_unmanaged
    assert (FLIGHTS, HAND_MADE) in edges
    assert not [p for p in deletes if made["id"] in p]
    assert result.summary["deleted"] >= 2 and result.summary["ok"] is True

    server.reset_log()
    again = publish(path, server)
    assert again.code == 0, again.stderr
    assert server.writes() == []
    assert again.summary["writes"] == 0


def test_pipeline_status_command_merges_into_the_execution(setup: Setup) -> None:
    server, doc = setup.server, setup.document
    fqn = task_pipeline(doc, "silver__airlines")
    server.reset_log()
    args = [
        "pipeline-status",
        "--pipeline",
        fqn,
        "--execution-id",
        AIRFLOW_EXECUTION,
        "--status",
        "Successful",
        "--start-ms",
        "1796094000000",
        "--end-ms",
        "1796094300000",
        "--task",
        "silver__flights=Successful",
        "--task",
        "silver__airports=Skipped",
    ]
    result = publish(setup.work / "document.json", server, args=args)
    assert result.code == 0, result.stderr
    assert [(r.method, r.path) for r in server.writes()] == [("PUT", f"/v1/pipelines/{fqn}/status")]
    code, body = call(server, "GET", f"/v1/pipelines/{fqn}/status?startTs=0&endTs=9999999999999")
    assert code == 200
    statuses = [s for s in body["data"] if s["executionId"] == AIRFLOW_EXECUTION]
    assert len(statuses) == 1  # merged into the status the publish wrote, not a second one
    assert statuses[0]["executionStatus"] == "Successful"
    tasks = {t["name"]: t for t in statuses[0]["taskStatus"]}
    assert {name: t["executionStatus"] for name, t in tasks.items()} == {
        "silver__airlines": "Successful",
        "silver__airports": "Skipped",
        "silver__flights": "Successful",
    }
    # The teardown knows no per-task times: the ones the runner's publish sent are kept
    # (demo_runs: silver__airlines at 03:01, silver__flights at 03:02, 30 s each); a task
    # the server had no status for takes the run's start and end.
    assert _times(tasks["silver__airlines"]) == (_ms("03:01:00"), _ms("03:01:30"))
    assert _times(tasks["silver__flights"]) == (_ms("03:02:00"), _ms("03:02:30"))
    assert _times(tasks["silver__airports"]) == (1796094000000, 1796094300000)

    # The same teardown again: the server already holds it, nothing is written.
    server.reset_log()
    again = publish(setup.work / "document.json", server, args=args)
    assert again.code == 0, again.stderr
    assert server.writes() == [] and again.summary["unchanged"] == 1
    assert_no_secret(server.token, result.stdout, result.stderr)


def _ms(clock: str) -> int:
    """Milliseconds of a time on the day of ``demo_runs`` (2026-12-01, UTC)."""
    return round(datetime.fromisoformat(f"2026-12-01T{clock}+00:00").timestamp() * 1000)


def _times(task: dict[str, Any]) -> tuple[int, int]:
    return task["startTime"], task["endTime"]


MODEL_KEY = "ml/flight_late_arrival"
MODEL = "onering_mlflow.flight_late_arrival"
CARRIER_ROWS = "onering_lake.features.carrier_stats"
JSON_PATCH = "application/json-patch+json"


def _republish(setup: Setup, document: dict[str, Any], name: str) -> Any:
    path = setup.work / name
    path.write_text(json.dumps(document))
    setup.server.reset_log()
    result = publish(path, setup.server)
    assert result.code == 0, result.stderr
    return result


def _converges(setup: Setup, document: dict[str, Any]) -> None:
    _republish(setup, document, "again.json")
    assert setup.server.writes() == []


def test_model_hand_edits_are_repaired_and_a_recreated_source_referenced_again(
    setup: Setup,
) -> None:
    server = setup.server
    _republish(setup, setup.document, "full.json")  # the previous test removed an asset
    model = server.entity("mlmodel", MODEL)
    assert model is not None
    # In the UI: the model's description and a feature's; a feature container is removed
    # for good and made again (by OneRing's next publish), under a new id.
    ops = [
        {"op": "replace", "path": "/description", "value": "typed in the UI"},
        {"op": "replace", "path": "/mlFeatures/5/description", "value": "typed in the UI"},
    ]
    code, _ = call(server, "PATCH", f"/v1/mlmodels/{model['id']}", ops, content_type=JSON_PATCH)
    assert code == 200
    rows = server.entity("container", CARRIER_ROWS)
    assert rows is not None
    query = "hardDelete=true&recursive=true"
    assert call(server, "DELETE", f"/v1/containers/{rows['id']}?{query}")[0] == 200
    assert not [k for k in server.edges() if CARRIER_ROWS in k]

    _republish(setup, setup.document, "full.json")
    writes = [(r.method, r.path) for r in server.writes()]
    assert ("PUT", "/v1/mlmodels") in writes and ("PATCH", f"/v1/mlmodels/{model['id']}") in writes
    repaired = server.entity("mlmodel", MODEL)
    assert repaired is not None and repaired["id"] == model["id"]
    assert repaired["description"] == model["description"]
    assert repaired["mlFeatures"][5]["description"] == model["mlFeatures"][5]["description"]
    made = server.entity("container", CARRIER_ROWS)
    assert made is not None and made["id"] != rows["id"]
    referenced = {
        s["dataSource"]["id"]
        for f in repaired["mlFeatures"]
        for s in f["featureSources"]
        if s["dataSource"]["fullyQualifiedName"] == CARRIER_ROWS
    }
    assert referenced == {made["id"]}
    edges = server.edges()
    assert edges[(CARRIER_ROWS, MODEL)] and edges[(CARRIER_ROWS, "onering_lake.ml.training_set")]
    _converges(setup, setup.document)


def test_a_model_removed_from_the_document_goes_with_its_edges_and_comes_back(
    setup: Setup,
) -> None:
    server = setup.server
    model = server.entity("mlmodel", MODEL)
    assert model is not None
    _republish(setup, _without(setup.document, MODEL_KEY), "no-model.json")
    deletes = [r.path for r in server.writes() if r.method == "DELETE"]
    assert deletes[-1] == f"/v1/mlmodels/{model['id']}"
    assert len([p for p in deletes if p.startswith("/v1/lineage/") and model["id"] in p]) == (
        len([k for k in _edges_before(setup) if MODEL in k])
    )
    assert not [k for k in server.edges() if MODEL in k]
    code, gone = call(server, "GET", f"/v1/mlmodels/name/{MODEL}?include=deleted")
    assert code == 200 and gone["deleted"] is True

    _republish(setup, setup.document, "full.json")
    restored = server.entity("mlmodel", MODEL)
    assert restored is not None and restored["id"] == model["id"]  # restored, not made anew
    puts = [r.status for r in server.writes() if r.path == "/v1/mlmodels"]
    assert puts == [200]
    assert {k for k in server.edges() if MODEL in k} == set(_edges_before(setup))
    _converges(setup, setup.document)


def _edges_before(setup: Setup) -> list[tuple[str, str]]:
    """The model's edges as the full document publishes them."""
    return [k for k in catalog_edges(setup.document) if MODEL in k]
