"""Only OneRing's entities and edges are written or removed; hand edits converge.

- Someone else's (untagged) table or pipeline at a OneRing FQN is left alone and reported as
  an error (exit 2); untagged services, databases and schemas are used as they are.
- An owner given in the UI does not make every publish write again.
- A column, task or table description edited in the UI is repaired with a JSON Patch (a
  bot's PUT cannot overwrite it on OpenMetadata, nor on the loopback server now).
- A removed asset is soft-deleted and restored by the PUT when it comes back; a table a user
  tagged ``OneRing.managed`` by hand (no ``sourceHash``) is never deleted; an edge a person
  drew between two of OneRing's tables stays.

No OpenMetadata server can run on these machines; the loopback server of ``om_server.py``
stands in for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.catalog.om_fixture import call
from tests.catalog.om_server import OMServer
from tests.catalog.test_publish_support import (
    demo_document,
    need_om_env,
    publish,
    task_pipeline,
    writes,
)

FLIGHTS = "onering_clickhouse.clickhouse.silver.flights"
AIRLINES = "onering_clickhouse.clickhouse.silver.airlines"
ROUTES = "onering_postgres.onering.gold.route_performance"
MODEL = "onering_mlflow.flight_late_arrival"
JSON_PATCH = "application/json-patch+json"


@dataclass
class Published:
    work: Path
    document: dict[str, Any]
    path: Path
    server: OMServer


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    need_om_env()
    folder = tmp_path_factory.mktemp("ownership")
    return folder, demo_document(folder)


@pytest.fixture(scope="module")
def published(work: tuple[Path, dict[str, Any]]) -> Iterator[Published]:
    """The demo document published once to a fresh server."""
    folder, document = work
    path = _write(folder / "document.json", document)
    server = OMServer(users=("onering-owner",), teams=("data-platform",)).start()
    try:
        first = publish(path, server)
        assert first.code == 0, first.stderr
        yield Published(folder, document, path, server)
    finally:
        server.stop()


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document))
    return path


def _entity(server: OMServer, entity_type: str, fqn: str) -> dict[str, Any]:
    found = server.entity(entity_type, fqn)
    assert found is not None, fqn
    return found


def _patch(server: OMServer, collection: str, entity_id: str, ops: list[dict[str, Any]]) -> None:
    code, body = call(
        server, "PATCH", f"/v1/{collection}/{entity_id}", ops, content_type=JSON_PATCH
    )
    assert code == 200, body


def _converges(published: Published, path: Path | None = None) -> None:
    """One more publish sends no write."""
    published.server.reset_log()
    again = publish(path or published.path, published.server)
    assert again.code == 0, again.stderr
    assert writes(published.server) == []
    assert again.summary["writes"] == 0


def test_foreign_entities_at_onering_names_are_left_alone(
    work: tuple[Path, dict[str, Any]],
) -> None:
    folder, document = work
    path = _write(folder / "foreign.json", document)
    dag = task_pipeline(document, "silver__airlines")
    server = OMServer(users=("onering-owner",), teams=("data-platform",)).start()
    try:
        theirs = [
            (
                "/v1/services/databaseServices",
                {"name": "onering_clickhouse", "serviceType": "Clickhouse"},
            ),
            ("/v1/databases", {"name": "clickhouse", "service": "onering_clickhouse"}),
            (
                "/v1/databaseSchemas",
                {"name": "silver", "database": "onering_clickhouse.clickhouse"},
            ),
            (
                "/v1/tables",
                {
                    "name": "airlines",
                    "databaseSchema": "onering_clickhouse.clickhouse.silver",
                    "description": "THEIR table",
                    "columns": [{"name": "theirs", "dataType": "INT"}],
                },
            ),
            (
                "/v1/services/pipelineServices",
                {"name": "onering_airflow", "serviceType": "Airflow"},
            ),
            (
                "/v1/pipelines",
                {
                    "name": dag.split(".", 1)[1],
                    "service": "onering_airflow",
                    "tasks": [{"name": "t"}],
                },
            ),
            ("/v1/services/mlmodelServices", {"name": "onering_mlflow", "serviceType": "Mlflow"}),
            (
                "/v1/mlmodels",
                {"name": "flight_late_arrival", "service": "onering_mlflow", "algorithm": "theirs"},
            ),
        ]
        for collection, body in theirs:
            code, answer = call(server, "PUT", collection, body)
            assert code == 201, answer
        before = {
            "table": _entity(server, "table", AIRLINES),
            "pipeline": _entity(server, "pipeline", dag),
            "databaseService": _entity(server, "databaseService", "onering_clickhouse"),
            "mlmodel": _entity(server, "mlmodel", MODEL),
            "mlmodelService": _entity(server, "mlmodelService", "onering_mlflow"),
        }
        server.reset_log()
        result = publish(path, server)
        # Not ok, not retryable: a person must tag or remove them; all the rest is published.
        assert result.code == 2, result.stderr
        summary = result.summary
        assert summary["ok"] is False
        assert sorted(summary["errors"]) == sorted(
            f"{kind} {fqn} exists in OpenMetadata and is not OneRing's (no OneRing.managed "
            "tag): left alone; tag it to let OneRing manage it, or remove it"
            for kind, fqn in (("table", AIRLINES), ("pipeline", dag), ("mlmodel", MODEL))
        )
        for kind, entity in before.items():
            assert server.entity(kind, entity["fullyQualifiedName"]) == entity
        put_names = [
            (r.path, r.body.get("name")) for r in server.writes() if isinstance(r.body, dict)
        ]
        assert ("/v1/services/databaseServices", "onering_clickhouse") not in put_names
        assert ("/v1/databases", "clickhouse") not in put_names
        assert any(
            "onering_clickhouse exists" in w and "used as it is" in w for w in summary["warnings"]
        )
        assert any(f"pipeline {dag} is not OneRing's" in w for w in summary["warnings"])
        flights = _entity(server, "table", FLIGHTS)
        assert {"OneRing.managed", "OneRing.silver"} <= {t["tagFQN"] for t in flights["tags"]}
        assert not [k for k in server.edges() if AIRLINES in k or MODEL in k]
        assert any(
            w == "edge ml/training_set -> ml/flight_late_arrival: not published, an end is "
            "not OneRing's"
            for w in summary["warnings"]
        )
        assert ("/v1/services/mlmodelServices", "onering_mlflow") not in put_names
        assert server.entity("testCase", f"{AIRLINES}.key_unique") is None
        assert summary["updated"] == 0  # every PUT answered 201

        # Unchanged: nothing is written, the same errors again.
        server.reset_log()
        again = publish(path, server)
        assert again.code == 2 and writes(server) == []

        # Tagged by hand: OneRing takes the table over; its PUT answers 200 (updated).
        tag = {"tagFQN": "OneRing.managed", "source": "Classification", "labelType": "Manual"}
        ops = [{"op": "add", "path": "/tags", "value": [{**tag, "state": "Confirmed"}]}]
        _patch(server, "tables", before["table"]["id"], ops)
        server.reset_log()
        adopted = publish(path, server)
        assert len(adopted.summary["errors"]) == 2  # the pipeline's and the model's
        assert "updated table " + AIRLINES in adopted.summary["written"]
        assert f"created table {AIRLINES}" not in adopted.summary["written"]
        table = _entity(server, "table", AIRLINES)
        assert table["id"] == before["table"]["id"]
        assert table["description"] != "THEIR table"  # repaired by a PATCH after the PUT
    finally:
        server.stop()


def test_owner_given_by_hand_is_kept_and_written_never(published: Published) -> None:
    server = published.server
    team = server.add_principal("team", "someone-else")
    owners = [{"id": team["id"], "type": "team"}]
    for collection, entity_type, fqn in (
        ("tables", "table", FLIGHTS),  # its document owner names no team here
        ("pipelines", "pipeline", "onering_dagster.onering"),  # a pipeline carries no owners
    ):
        found = _entity(server, entity_type, fqn)
        _patch(server, collection, found["id"], [{"op": "add", "path": "/owners", "value": owners}])
    _converges(published)
    _converges(published)
    assert [o["id"] for o in _entity(server, "table", FLIGHTS)["owners"]] == [team["id"]]


def test_hand_edited_descriptions_are_repaired_with_a_patch(published: Published) -> None:
    server = published.server
    flights = _entity(server, "table", FLIGHTS)
    pipeline = _entity(server, "pipeline", "onering_dagster.onering")
    entity = next(e for e in published.document["entities"] if e["fqn"] == FLIGHTS)
    column = entity["columns"][1]
    assert flights["columns"][1]["name"] == column["name"] and column["description"]
    # The loopback server, as OpenMetadata: a bot's PUT keeps a non-empty column description.
    columns = [
        {k: v for k, v in c.items() if k != "fullyQualifiedName"} for c in flights["columns"]
    ]
    columns[1]["description"] = "from a bot"
    body = {
        "name": "flights",
        "databaseSchema": "onering_clickhouse.clickhouse.silver",
        "columns": columns,
    }
    code, kept = call(server, "PUT", "/v1/tables", body)
    assert code == 200 and kept["columns"][1]["description"] == column["description"]

    _patch(
        server,
        "tables",
        flights["id"],
        [
            {"op": "replace", "path": "/columns/1/description", "value": "typed in the UI"},
            {"op": "replace", "path": "/description", "value": "typed in the UI too"},
        ],
    )
    task = pipeline["tasks"][0]
    _patch(
        server,
        "pipelines",
        pipeline["id"],
        [{"op": "add", "path": "/tasks/0/description", "value": "a task, by hand"}],
    )
    server.reset_log()
    result = publish(published.path, server)
    assert result.code == 0, result.stderr
    assert writes(server) == [
        ("PATCH", f"/v1/pipelines/{pipeline['id']}"),
        ("PATCH", f"/v1/tables/{flights['id']}"),
    ]
    repaired = _entity(server, "table", FLIGHTS)
    assert repaired["columns"][1]["description"] == column["description"]
    assert repaired["description"] == entity["description"]
    tasks = _entity(server, "pipeline", "onering_dagster.onering")["tasks"]
    assert tasks[0]["description"] == task["description"]
    _converges(published)


def test_hand_drawn_edge_between_onering_tables_stays(published: Published) -> None:
    server = published.server
    airlines, routes = _entity(server, "table", AIRLINES), _entity(server, "table", ROUTES)
    assert (AIRLINES, ROUTES) not in server.edges()  # not an edge of the document
    edge = {
        "edge": {
            "fromEntity": {"id": airlines["id"], "type": "table"},
            "toEntity": {"id": routes["id"], "type": "table"},
            "lineageDetails": {"description": "drawn by a person", "source": "Manual"},
        }
    }
    assert call(server, "PUT", "/v1/lineage", edge)[0] == 200
    _converges(published)
    assert (AIRLINES, ROUTES) in server.edges()


def test_removed_asset_is_soft_deleted_and_restored_and_hand_tagged_table_kept(
    published: Published,
) -> None:
    server, document = published.server, published.document
    tagged = {
        "name": "tagged_by_hand",
        "databaseSchema": "onering_postgres.onering.gold",
        "columns": [{"name": "x", "dataType": "INT"}],
        "tags": [
            {
                "tagFQN": "OneRing.managed",
                "source": "Classification",
                "labelType": "Manual",
                "state": "Confirmed",
            }
        ],
    }
    assert call(server, "PUT", "/v1/tables", tagged)[0] == 201
    routes = _entity(server, "table", ROUTES)
    smaller = json.loads(json.dumps(document))
    smaller["entities"] = [e for e in smaller["entities"] if e["fqn"] != ROUTES]
    key = "gold/route_performance"
    smaller["edges"] = [e for e in smaller["edges"] if key not in (e["from"], e["to"])]
    smaller["runs"] = [r for r in smaller["runs"] if all(c["asset"] != key for c in r["checks"])]
    path = _write(published.work / "smaller.json", smaller)

    server.reset_log()
    result = publish(path, server)
    assert result.code == 0, result.stderr
    deletes = [(r.path, r.query) for r in server.writes() if r.method == "DELETE"]
    # Soft: no hardDelete (recoverable), recursive (its test suite and cases go with it).
    assert deletes[-1] == (f"/v1/tables/{routes['id']}", {"recursive": "true"})
    assert not [q for _, q in deletes if "hardDelete" in q]
    assert server.entity("table", "onering_postgres.onering.gold.tagged_by_hand") is not None
    code, gone = call(server, "GET", f"/v1/tables/name/{ROUTES}?include=deleted")
    assert code == 200 and gone["deleted"] is True
    _converges(published, path)  # a soft-deleted one is not deleted again

    # Back in the document: the PUT of its name restores it (same id), counted as updated.
    server.reset_log()
    back = publish(published.path, server)
    assert back.code == 0, back.stderr
    restored = _entity(server, "table", ROUTES)
    assert restored["id"] == routes["id"] and restored["deleted"] is False
    puts = [r for r in server.writes() if r.method == "PUT" and r.path == "/v1/tables"]
    assert [r.status for r in puts] == [200]
    assert back.summary["updated"] >= 1
    assert (FLIGHTS, ROUTES) in server.edges()  # OneRing's edge, deleted then drawn again
    _converges(published)


def test_dropped_runs_and_results_are_warnings(published: Published) -> None:
    document = json.loads(json.dumps(published.document))
    gone, renamed = (json.loads(json.dumps(document["runs"][i])) for i in (0, 2))
    gone.update(run_id="run-gone", execution_id="manual__gone")
    gone["pipeline"] = "onering_airflow.onering_retired_dag"
    renamed.update(run_id="run-renamed", execution_id="run-renamed")
    for check in renamed["checks"]:
        check["name"] = "renamed_check"
    document["runs"] = [gone, renamed]
    path = _write(published.work / "dropped.json", document)
    published.server.reset_log()
    result = publish(path, published.server)
    assert result.code == 0 and result.summary["ok"] is True, result.stderr
    warnings = result.summary["warnings"]
    assert (
        "run run-gone (execution manual__gone): status not published, pipeline "
        "onering_airflow.onering_retired_dag is not in the document"
    ) in warnings
    assert (
        "run run-renamed: result of check gold/route_performance renamed_check not published: "
        "no such test case in OpenMetadata"
    ) in warnings


def test_results_and_statuses_name_their_partitions(published: Published) -> None:
    document = json.loads(json.dumps(published.document))
    entity = next(e for e in document["entities"] if e["fqn"] == FLIGHTS)
    check = entity["checks"][0]["name"]
    run = json.loads(json.dumps(document["runs"][2]))  # the Dagster-launched demo run
    run.update(run_id="run-april", execution_id="run-april", partitions=["2013-04", "2013-04"])
    times = {"start": "2026-12-03T03:00:00.000+00:00", "end": "2026-12-03T03:01:00.000+00:00"}
    run.update(times)
    run["tasks"] = [{**run["tasks"][0], "name": "silver__flights", **times}]
    run["materializations"] = [
        {"asset": "silver/flights", "partitions": ["2013-04"], "rows": 27004}
    ]
    at = "2026-12-03T03:00:50.000+00:00"
    run["checks"] = [
        {**run["checks"][0], "asset": "silver/flights", "name": check, "at": at}
        | {"summary": "0 of 27004 rows rejected", "passed": True, "partition": None}
    ]
    document["runs"] = [run]
    path = _write(published.work / "april.json", document)
    result = publish(path, published.server)
    assert result.code == 0, result.stderr
    server = published.server
    query = "startTs=0&endTs=9999999999999"
    code, results = call(
        server, "GET", f"/v1/dataQuality/testCases/testCaseResults/{FLIGHTS}.{check}?{query}"
    )
    assert code == 200
    assert results["data"][0]["result"] == "2013-04: 0 of 27004 rows rejected"
    code, statuses = call(server, "GET", f"/v1/pipelines/onering_dagster.onering/status?{query}")
    assert code == 200
    april = next(s for s in statuses["data"] if s["executionId"] == "run-april")
    assert april["parameters"] == {"partitions": "2013-04"}
    _converges(published, path)
