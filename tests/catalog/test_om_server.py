"""The loopback OpenMetadata server answers and refuses as OpenMetadata 2.0.7 does.

No OpenMetadata server can run on these machines (it ships only as container images and release
archives), so this loopback server stands in for it; these tests pin its behaviour, and the last
two drive it with the real ``openmetadata-ingestion`` 2.0.7 client from the openmetadata env.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.catalog.om_fixture import call, om_server  # noqa: F401 (pytest fixture, used by name)
from tests.catalog.om_server import OMServer

OM_PYTHON = Path(__file__).parents[2] / "envs" / "openmetadata" / ".venv" / "bin" / "python"
CHECK = Path(__file__).with_name("om_client_check.py")
SCHEMA = "onering_clickhouse.clickhouse.silver"
TAG = {
    "tagFQN": "OneRing.managed",
    "source": "Classification",
    "labelType": "Automated",
    "state": "Confirmed",
}
COLUMNS = [{"name": "carrier", "dataType": "STRING"}, {"name": "dep_delay", "dataType": "INT"}]


def put(server: OMServer, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = call(server, "PUT", f"/v1/{collection}", body)
    assert status in (200, 201), answer
    return answer


def seed(server: OMServer) -> dict[str, dict[str, Any]]:
    """Service, database, schema, the OneRing tag, two tables and a pipeline."""
    put(
        server,
        "services/databaseServices",
        {"name": "onering_clickhouse", "serviceType": "Clickhouse"},
    )
    put(server, "databases", {"name": "clickhouse", "service": "onering_clickhouse"})
    put(server, "databaseSchemas", {"name": "silver", "database": "onering_clickhouse.clickhouse"})
    put(server, "classifications", {"name": "OneRing", "description": "OneRing"})
    put(server, "tags", {"name": "managed", "description": "Managed", "classification": "OneRing"})
    put(server, "services/pipelineServices", {"name": "onering_dagster", "serviceType": "Dagster"})
    return {
        "flights": put(
            server, "tables", {"name": "flights", "databaseSchema": SCHEMA, "columns": COLUMNS}
        ),
        "summary": put(
            server, "tables", {"name": "summary", "databaseSchema": SCHEMA, "columns": COLUMNS[:1]}
        ),
        "pipeline": put(
            server,
            "pipelines",
            {
                "name": "onering",
                "service": "onering_dagster",
                "tasks": [{"name": "silver__summary"}],
            },
        ),
    }


def edge(from_: dict[str, Any], to: dict[str, Any], **details: Any) -> dict[str, Any]:
    return {
        "edge": {
            "fromEntity": {"id": from_["id"], "type": "table"},
            "toEntity": {"id": to["id"], "type": "table"},
            "lineageDetails": details,
        }
    }


def test_version_is_open_and_the_api_needs_the_bearer_token(om_server: OMServer) -> None:  # noqa: F811
    assert call(om_server, "GET", "/v1/system/version", token=None) == (
        200,
        {"version": "2.0.7", "revision": "loopback", "timestamp": 0},
    )
    body = {"name": "onering_clickhouse", "serviceType": "Clickhouse"}
    assert call(om_server, "PUT", "/v1/services/databaseServices", body, token=None) == (
        401,
        {"code": 401, "message": "Not Authorized! Token not present"},
    )
    status, answer = call(om_server, "PUT", "/v1/services/databaseServices", body, token="a.b.c")
    assert (status, answer["code"]) == (401, 401)
    assert om_server.state.find("databaseService", "onering_clickhouse") is None
    assert om_server.token.count(".") == 2


def test_put_creates_then_versions_only_real_changes(om_server: OMServer) -> None:  # noqa: F811
    first = seed(om_server)["flights"]
    assert first["version"] == 0.1 and first["fullyQualifiedName"] == f"{SCHEMA}.flights"
    assert first["service"]["name"] == "onering_clickhouse" and first["serviceType"] == "Clickhouse"
    same = {"name": "flights", "databaseSchema": SCHEMA, "columns": COLUMNS}
    status, again = call(om_server, "PUT", "/v1/tables", same)
    assert (status, again["version"], again["id"], again["updatedAt"]) == (
        200,
        0.1,
        first["id"],
        first["updatedAt"],
    )
    changed = put(om_server, "tables", {**same, "description": "Flights.", "sourceHash": "abc"})
    assert changed["version"] == 0.2
    added = {f["name"] for f in changed["changeDescription"]["fieldsAdded"]}
    assert (
        added == {"description", "sourceHash"}
        and changed["changeDescription"]["previousVersion"] == 0.1
    )
    dropped = put(om_server, "tables", {**same, "columns": COLUMNS[:1]})
    assert dropped["version"] == 1.2  # a removed column is OpenMetadata's major change
    assert put(om_server, "tables", same)["description"] == "Flights."  # a PUT never blanks a field


def test_fqn_quotes_name_parts_with_dots(om_server: OMServer) -> None:  # noqa: F811
    seed(om_server)
    table = put(
        om_server,
        "tables",
        {"name": "a.b", "databaseSchema": SCHEMA, "columns": [{"name": "x.y", "dataType": "INT"}]},
    )
    assert table["fullyQualifiedName"] == f'{SCHEMA}."a.b"'
    status, got = call(
        om_server,
        "GET",
        f"/v1/tables/name/{quote(table['fullyQualifiedName'], safe='')}?fields=columns",
    )
    assert status == 200 and got["columns"][0]["fullyQualifiedName"] == f'{SCHEMA}."a.b"."x.y"'


def test_lineage_graph_depth_and_delete(om_server: OMServer) -> None:  # noqa: F811
    made = seed(om_server)
    third = put(
        om_server, "tables", {"name": "third", "databaseSchema": SCHEMA, "columns": COLUMNS[:1]}
    )
    pipeline = {"id": made["pipeline"]["id"], "type": "pipeline"}
    pairs = [
        {"fromColumns": [f"{SCHEMA}.flights.carrier"], "toColumn": f"{SCHEMA}.summary.carrier"}
    ]
    assert call(
        om_server,
        "PUT",
        "/v1/lineage",
        edge(made["flights"], made["summary"], pipeline=pipeline, columnsLineage=pairs),
    ) == (200, None)
    assert call(om_server, "PUT", "/v1/lineage", edge(made["summary"], third))[0] == 200
    lineage = call(
        om_server, "GET", f"/v1/lineage/table/name/{SCHEMA}.third?upstreamDepth=2&downstreamDepth=0"
    )[1]
    assert [n["name"] for n in lineage["nodes"]] == ["summary", "flights"]
    first_hop, second_hop = lineage["upstreamEdges"]
    assert (first_hop["fromEntity"], first_hop["toEntity"]) == (made["summary"]["id"], third["id"])
    assert (second_hop["fromEntity"], second_hop["toEntity"]) == (
        made["flights"]["id"],
        made["summary"]["id"],
    )
    assert (
        second_hop["lineageDetails"]["pipeline"]["fullyQualifiedName"] == "onering_dagster.onering"
    )
    assert (
        second_hop["lineageDetails"]["columnsLineage"] == pairs and lineage["downstreamEdges"] == []
    )
    path = f"/v1/lineage/table/{made['flights']['id']}/table/{made['summary']['id']}"
    assert call(om_server, "DELETE", path) == (200, None)
    assert call(om_server, "DELETE", path) == (
        404,
        {"code": 404, "message": "Lineage edge not found"},
    )
    assert om_server.edges() == {
        (f"{SCHEMA}.summary", f"{SCHEMA}.third"): om_server.graph.edges[
            (made["summary"]["id"], third["id"])
        ]
    }


def test_soft_delete_restore_and_hard_delete(om_server: OMServer) -> None:  # noqa: F811
    made = seed(om_server)
    call(om_server, "PUT", "/v1/lineage", edge(made["flights"], made["summary"]))
    flights = f"/v1/tables/{made['flights']['id']}"
    assert (
        call(om_server, "DELETE", "/v1/databaseSchemas/name/" + SCHEMA)[1]["message"]
        == "databaseSchema is not empty"
    )
    status, deleted = call(om_server, "DELETE", flights + "?hardDelete=false&recursive=false")
    assert status == 200 and deleted["fullyQualifiedName"] == f"{SCHEMA}.flights"
    assert call(om_server, "GET", flights)[0] == 404
    assert call(om_server, "GET", flights + "?include=deleted")[1]["deleted"] is True
    restored = put(
        om_server, "tables", {"name": "flights", "databaseSchema": SCHEMA, "columns": COLUMNS}
    )
    assert (restored["deleted"], restored["version"]) == (False, 0.3)
    assert call(om_server, "DELETE", flights + "?hardDelete=true&recursive=true")[0] == 200
    assert om_server.state.find("table", f"{SCHEMA}.flights") is None and om_server.edges() == {}


def test_pipeline_status_and_test_case_results(om_server: OMServer) -> None:  # noqa: F811
    seed(om_server)
    now = int(time.time() * 1000)
    status = {
        "timestamp": now,
        "executionStatus": "Successful",
        "executionId": "run-1",
        "taskStatus": [{"name": "silver__summary", "executionStatus": "Successful"}],
    }
    path = "/v1/pipelines/onering_dagster.onering/status"
    assert call(om_server, "PUT", path, status)[1]["pipelineStatus"]["executionId"] == "run-1"
    assert call(om_server, "PUT", path, {**status, "executionStatus": "Done"})[0] == 400
    unknown_task = {**status, "taskStatus": [{"name": "nope", "executionStatus": "Failed"}]}
    assert call(om_server, "PUT", path, unknown_task)[1]["message"] == "Invalid task name nope"
    assert (
        call(om_server, "GET", f"{path}?startTs={now - 1}&endTs={now + 1}")[1]["paging"]["total"]
        == 1
    )
    suite = put(
        om_server,
        "dataQuality/testSuites/executable",
        {"name": f"{SCHEMA}.flights.testSuite", "basicEntityReference": f"{SCHEMA}.flights"},
    )
    assert suite["fullyQualifiedName"] == f"{SCHEMA}.flights.testSuite" and suite["basic"] is True
    link = f"<#E::table::{SCHEMA}.flights::columns::carrier>"
    case = put(
        om_server,
        "dataQuality/testCases",
        {
            "name": "carrier_not_null",
            "testDefinition": "columnValuesToBeNotNull",
            "entityLink": link,
        },
    )
    assert case["fullyQualifiedName"] == f"{SCHEMA}.flights.carrier.carrier_not_null"
    results = (
        f"/v1/dataQuality/testCases/testCaseResults/{quote(case['fullyQualifiedName'], safe='')}"
    )
    result = {
        "timestamp": now,
        "testCaseStatus": "Success",
        "testResultValue": [{"name": "nullCount", "value": "0"}],
    }
    assert (
        call(
            om_server, "POST", results, {k: v for k, v in result.items() if k != "testResultValue"}
        )[0]
        == 400
    )
    assert call(om_server, "POST", results, {**result, "testCaseStatus": "Passed"})[0] == 400
    assert call(om_server, "POST", results, result)[1]["testCaseFQN"] == case["fullyQualifiedName"]
    assert (
        call(om_server, "GET", f"{results}?startTs={now}&endTs={now}")[1]["data"][0][
            "testCaseStatus"
        ]
        == "Success"
    )
    suite_path = f"/v1/dataQuality/testSuites/name/{quote(suite['fullyQualifiedName'], safe='')}"
    tests = call(om_server, "GET", f"{suite_path}?fields=tests")[1]["tests"]
    assert [t["fullyQualifiedName"] for t in tests] == [case["fullyQualifiedName"]]


def test_json_patch_adds_a_tag_and_needs_its_media_type(om_server: OMServer) -> None:  # noqa: F811
    flights = seed(om_server)["flights"]
    patch = [
        {"op": "add", "path": "/tags/0", "value": TAG},
        {"op": "add", "path": "/description", "value": "F"},
    ]
    path = f"/v1/tables/{flights['id']}"
    assert call(om_server, "PATCH", path, patch)[0] == 415
    status, patched = call(
        om_server, "PATCH", path, patch, content_type="application/json-patch+json"
    )
    assert (status, patched["tags"], patched["description"], patched["version"]) == (
        200,
        [TAG],
        "F",
        0.2,
    )
    bad = [{"op": "add", "path": "/tags/0", "value": {**TAG, "tagFQN": "Nope.x"}}]
    assert call(om_server, "PATCH", path, bad, content_type="application/json-patch+json")[0] == 404


def test_injected_failures_and_delays(om_server: OMServer) -> None:  # noqa: F811
    seed(om_server)
    om_server.fail_next(500, count=2, path_prefix="/tables")
    path = f"/v1/tables/name/{SCHEMA}.flights"
    assert [call(om_server, "GET", path)[0] for _ in range(3)] == [500, 500, 200]
    om_server.delay_next(1.0, path_prefix="/tables")
    with pytest.raises(socket.timeout):
        call(om_server, "GET", path, timeout=0.2)
    om_server.reset_log()
    assert (
        om_server.requests == [] and call(om_server, "PUT", "/v1/tables", {"name": "x"})[0] == 400
    )
    assert [(r.method, r.path, r.status) for r in om_server.writes()] == [
        ("PUT", "/v1/tables", 400)
    ]


def test_a_thousand_tables_republish_unchanged_quickly(om_server: OMServer) -> None:  # noqa: F811
    seed(om_server)
    bodies = [
        {
            "name": f"t{i:04d}",
            "databaseSchema": SCHEMA,
            "columns": COLUMNS,
            "tags": [TAG],
            "sourceHash": f"h{i}",
        }
        for i in range(1000)
    ]
    for body in bodies:
        put(om_server, "tables", body)
    started = time.perf_counter()
    statuses = {call(om_server, "PUT", "/v1/tables", body)[0] for body in bodies}
    elapsed = time.perf_counter() - started
    assert statuses == {200} and elapsed < 5.0, elapsed
    assert {e.version for e in om_server.state.of_type("table")} == {0.1}


@pytest.fixture(scope="module")
def om_env_report() -> Iterator[tuple[OMServer, dict[str, Any]]]:
    """One run of ``om_client_check.py`` in the openmetadata env against its own server."""
    if not OM_PYTHON.exists():
        pytest.skip(f"the openmetadata env is missing ({OM_PYTHON}): run `make setup`")
    server = OMServer().start()
    env = {**os.environ, "OM_CHECK_URL": server.url, "OM_CHECK_TOKEN": server.token}
    try:
        done = subprocess.run(
            [str(OM_PYTHON), str(CHECK), "all"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        yield server, json.loads(done.stdout)
    finally:
        server.stop()


def test_vendored_schemas_know_every_field_of_the_2_0_7_models(
    om_env_report: tuple[OMServer, dict[str, Any]],
) -> None:
    spec = Path(__file__).with_name("om_spec")
    models = om_env_report[1]["fields"]
    vendored = {str(p.relative_to(spec)) for p in (spec / "api").rglob("*.json")}
    assert set(models) == vendored  # every vendored request schema is checked
    for path, model in models.items():
        schema = json.loads((spec / path).read_text())
        assert sorted(schema["properties"]) == model["fields"], path
        assert sorted(schema.get("required", [])) == model["required"], path


def test_real_2_0_7_client_round_trip(om_env_report: tuple[OMServer, dict[str, Any]]) -> None:
    server, report = om_env_report
    got = report["client"]
    assert (
        got["versions"] == [0.1, 0.1]
        and got["add_lineage_error"] is None
        and got["missing"] is True
    )
    assert got["column_fqns"] == [f"{SCHEMA}.flights.carrier", f"{SCHEMA}.flights.dep_delay"]
    (upstream,) = got["upstream"]
    assert upstream["lineageDetails"]["columnsLineage"] == [
        {
            "fromColumns": [f"{SCHEMA}.flights.carrier"],
            "toColumn": f"{SCHEMA}.carrier_summary.carrier",
        }
    ]
    assert upstream["lineageDetails"]["pipeline"]["fullyQualifiedName"] == "onering_dagster.onering"
    assert (
        got["nodes"] == [f"{SCHEMA}.flights"]
        and got["statuses"] == ["r1"]
        and got["pipeline_status"] == "Successful"
    )
    assert got["task_fqns"] == ["onering_dagster.onering.silver__carrier_summary"]
    assert server.requests[0].path == "/v1/system/version"
    ml = got["ml"]
    assert (ml["model_fqn"], ml["service_type"]) == ("onering_mlflow.flight_late_arrival", "Mlflow")
    assert ml["feature_fqn"] == "onering_mlflow.flight_late_arrival.carrier"
    assert ml["source_fqn"] == f"{SCHEMA}.flights.carrier"
    (drawn,) = ml["upstream"]  # drawn by the server from the feature source, no details
    assert "lineageDetails" not in drawn or drawn["lineageDetails"] is None
    assert [r.path for r in server.writes()][:4] == [
        "/v1/services/databaseServices",
        "/v1/databases",
        "/v1/databaseSchemas",
        "/v1/tables",
    ]
