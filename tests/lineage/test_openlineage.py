"""OpenLineage run events from the lineage document, sent to a file and to real HTTP servers.

The document comes from the real definitions and real runs of the airlines tables on the
embedded stores (one tagged as Airflow's, one whose Bronze key check fails), plus two run
records of the Gold mart ``carrier_monthly_performance`` built here on the real graph (a
success with a planted failed WARN check, and a failure): a Gold run needs months of flights.

No OpenLineage consumer runs here (Marquez and OpenMetadata ship as container images), so
the HTTP endpoint is a stdlib ``http.server`` on 127.0.0.1. The OpenLineage spec's JSON
schema is not in ``openlineage-python`` and openlineage.io is unreachable, so every event is
parsed back *strictly* with the package's generated ``attrs`` classes: each facet resolved
from its ``_schemaURL`` to its class, unknown or missing fields and wrong types rejected,
the classes' validators run (date-times, UUIDs), and the result must serialize back to the
same JSON. The facet keys and required fields are checked against a table written from the
spec's facet files in the OpenLineage repository (``spec/facets/*.json``).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.serde import Serde

from onering_assets.lineage.openlineage import OpenLineageError, configured, emit_run
from onering_assets.lineage.openlineage_events import run_events
from onering_assets.settings import PLATFORM_DIR
from tests.lineage.airlines_runs import document_of
from tests.lineage.ol_strict import parse

MART = "gold/carrier_monthly_performance"
SECRET = "ol-secret-3f9a"  # an API key / JWT that must never leave the Authorization header


# From the spec's facet files: where -> key -> (facet file, required fields).
@pytest.fixture(scope="module")
def document(airlines_state: Path) -> dict:
    doc = document_of(airlines_state)
    doc["runs"] += [gold_record(doc, ok=True), gold_record(doc, ok=False)]
    return doc


def gold_record(document: dict, *, ok: bool) -> dict:
    """A run of the mart: ``ok`` with a planted failed WARN check, else a failed step."""
    run_id = str(uuid.uuid4())
    step = {
        "name": "gold__carrier_monthly_performance",
        "status": "SUCCESS" if ok else "FAILURE",
        "start": "2026-12-01T03:00:01.000+00:00",
        "end": "2026-12-01T03:00:05.000+00:00",
    }
    declared = next(e for e in document["entities"] if e["key"] == MART)["checks"]
    checks = [
        {
            "asset": MART,
            "name": c["name"],
            "passed": c["name"] != ("ge_suite" if ok else "key_unique"),
            "severity": "WARN" if ok and c["name"] == "ge_suite" else "ERROR",
            "summary": "(carrier, month) is unique" if c["name"] == "key_unique" else "planted",
            "failing": 0,
            "partition": "2013-01",
            "at": "2026-12-01T03:00:04.000+00:00",
        }
        for c in declared
    ]
    return {
        "run_id": run_id,
        "pipeline": "onering_dagster.onering",
        "execution_id": run_id,
        "status": "SUCCESS" if ok else "FAILURE",
        "start": "2026-12-01T03:00:00.000+00:00",
        "end": "2026-12-01T03:00:06.000+00:00",
        "airflow": None,
        "partitions": ["2013-01", "2013-01"],
        "tasks": [step],
        "steps": [step],
        "materializations": [{"asset": MART, "partitions": ["2013-01"], "rows": 16}] if ok else [],
        "checks": checks,
    }


@pytest.fixture(scope="module")
def events(document: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """Every run's events, written by the file transport and parsed back strictly."""
    path = tmp_path_factory.mktemp("ol") / "events.jsonl"
    by_run = {}
    for record in document["runs"]:
        lines_before = len(path.read_text().splitlines()) if path.exists() else 0
        count = emit_run(document, record, {"ONERING_OPENLINEAGE_FILE": str(path)})
        lines = path.read_text().splitlines()[lines_before:]
        assert count == len(lines) > 0
        by_run[record["run_id"]] = [parse(line) for line in lines]
    return by_run


def find(events: list, job: str, state: str) -> Any:
    return next(e for e in events if e.job.name == job and e.eventType.value == state)


def record_of(document: dict, status: str, *, airflow: bool | None = None) -> dict:
    return next(
        r
        for r in document["runs"]
        if r["status"] == status and (airflow is None or bool(r["airflow"]) == airflow)
    )


# --- contents -----------------------------------------------------------------------------


def test_gold_mart_column_lineage_matches_its_sql(document: dict, events: dict) -> None:
    run = record_of(document, "SUCCESS", airflow=False)
    done = find(events[run["run_id"]], "onering.gold__carrier_monthly_performance", "COMPLETE")
    (output,) = done.outputs
    assert (output.namespace, output.name) == (
        "postgres://onering_postgres",
        "onering.gold.carrier_monthly_performance",
    )
    assert {(i.namespace, i.name) for i in done.inputs} == {
        ("clickhouse://onering_clickhouse", "silver.flights"),
        ("clickhouse://onering_clickhouse", "silver.airlines"),
    }
    lineage = {
        column: sorted((f.name, f.field) for f in fields.inputFields)
        for column, fields in output.facets["columnLineage"].fields.items()
    }
    assert lineage == {
        "avg_arr_delay": [("silver.flights", "arr_delay")],
        "avg_dep_delay": [("silver.flights", "dep_delay")],
        "cancelled": [("silver.flights", "dep_time")],
        "carrier": [("silver.flights", "carrier")],
        "carrier_name": [("silver.airlines", "name")],
        "month": [("silver.flights", "flight_date")],
        "pct_arr_delayed_15": [("silver.flights", "arr_delay")],
    }
    sql = (PLATFORM_DIR / "analytics/clickhouse/gold/carrier_monthly_performance.sql").read_text()
    for column, sources in lineage.items():
        (line,) = [x for x in sql.splitlines() if re.search(rf"\bAS {column}\b", x)]
        assert all(re.search(rf"\b\w\.{field}\b", line) for _, field in sources), line
    assert done.job.facets["sql"].query.startswith("-- On-time performance per carrier")
    assert done.job.facets["sql"].dialect == "clickhouse"


def test_schema_documentation_ownership_and_row_count(document: dict, events: dict) -> None:
    run = record_of(document, "SUCCESS", airflow=False)
    done = find(events[run["run_id"]], "onering.gold__carrier_monthly_performance", "COMPLETE")
    entity = next(e for e in document["entities"] if e["key"] == MART)
    (output,) = done.outputs
    fields = output.facets["schema"].fields
    assert [(f.name, f.type, f.description) for f in fields] == [
        (c["name"], c["type"], c["description"]) for c in entity["columns"]
    ]
    assert next(f for f in fields if f.name == "avg_dep_delay").type == "double precision"
    assert output.facets["documentation"].description == entity["description"]
    assert [o.name for o in output.facets["ownership"].owners] == ["team:flight-analytics"]
    assert output.outputFacets["outputStatistics"].rowCount == 16
    nominal = done.run.facets["nominalTime"]
    assert (nominal.nominalStartTime, nominal.nominalEndTime) == (
        "2013-01-01T00:00:00Z",
        "2013-02-01T00:00:00Z",
    )


def test_real_run_rows_and_airflow_parents(document: dict, events: dict) -> None:
    run = record_of(document, "SUCCESS", airflow=True)
    evs = events[run["run_id"]]
    assert [e.eventType.value for e in (evs[0], evs[-1])] == ["START", "COMPLETE"]
    assert evs[0].job.name == "onering_silver.silver__airlines"
    assert evs[0].run.runId == run["run_id"]
    dag = evs[0].run.facets["parent"]
    assert (dag.job.name, dag.root.job.name) == ("onering_silver", "onering_silver")
    silver = find(evs, "onering.silver__airlines", "COMPLETE")
    rows = next(m["rows"] for m in run["materializations"] if m["asset"] == "silver/airlines")
    assert silver.outputs[0].outputFacets["outputStatistics"].rowCount == rows == 16
    parent = silver.run.facets["parent"]
    assert (parent.job.name, parent.run.runId) == ("onering_silver.silver__airlines", run["run_id"])
    assert parent.root.run.runId == dag.run.runId
    assert silver.inputs[0].namespace == "s3://onering-lake"
    assert silver.inputs[0].name == "bronze/airlines"
    lineage = silver.outputs[0].facets["columnLineage"].fields
    assert [(f.name, f.field) for f in lineage["carrier"].inputFields] == [
        ("bronze/airlines", "carrier")
    ]


def test_the_stream_job_outputs_bronze_flights_and_bronze_does_not_read_it(
    document: dict,
) -> None:
    """A ``writes`` edge is an output of the writer's job, never an input of the target's."""
    run_id = str(uuid.uuid4())
    steps = [
        {
            "name": name,
            "status": "SUCCESS",
            "start": "2026-12-01T03:00:01.000+00:00",
            "end": "2026-12-01T03:00:02.000+00:00",
        }
        for name in ("stream__flights_events", "bronze__flights")
    ]
    record = {
        "run_id": run_id,
        "pipeline": "onering_dagster.onering",
        "execution_id": run_id,
        "status": "SUCCESS",
        "start": "2026-12-01T03:00:00.000+00:00",
        "end": "2026-12-01T03:00:03.000+00:00",
        "airflow": None,
        "partitions": None,
        "tasks": steps,
        "steps": steps,
        "materializations": [
            {"asset": "stream/flights_events", "partitions": None, "rows": 1},
            {"asset": "bronze/flights", "partitions": None, "rows": 16},
        ],
        "checks": [],
    }
    evs = run_events(document, record)
    stream = find(evs, "onering.stream__flights_events", "COMPLETE")
    assert [o.name for o in stream.outputs] == ["stream/flights_events", "bronze/flights"]
    bronze = find(evs, "onering.bronze__flights", "COMPLETE")
    assert "stream/flights_events" not in [i.name for i in bronze.inputs]


def test_checks_become_data_quality_assertions(document: dict, events: dict) -> None:
    run = record_of(document, "SUCCESS", airflow=False)
    checked = find(
        events[run["run_id"]], "onering.gold__carrier_monthly_performance.checks", "COMPLETE"
    )
    (dataset,) = checked.inputs
    assertions = dataset.inputFacets["dataQualityAssertions"].assertions
    expected = {(c["name"], c["passed"]) for c in run["checks"]}
    assert {(a.assertion, a.success) for a in assertions} == expected
    assert ("ge_suite", False) in expected  # the planted WARN failure: COMPLETE, success=false
    unique = next(a for a in assertions if a.assertion == "key_unique")
    assert (unique.column, unique.params) == (None, {"partition": "2013-01"})  # two columns


def test_failed_runs_give_fail_events(document: dict, events: dict) -> None:
    gold = document["runs"][-1]
    evs = events[gold["run_id"]]
    assert find(evs, "onering.gold__carrier_monthly_performance", "FAIL")
    assert find(evs, "onering.gold__carrier_monthly_performance.checks", "FAIL")
    assert evs[-1].eventType.value == "FAIL" and evs[-1].job.name == "onering"
    real = record_of(document, "FAILURE", airflow=False)
    evs = events[real["run_id"]]
    failed = find(evs, "onering.bronze__airlines", "FAIL")
    assert "ge_suite" in failed.run.facets["errorMessage"].message
    checked = find(evs, "onering.bronze__airlines.checks", "FAIL")
    suite = next(
        a
        for a in checked.inputs[0].inputFacets["dataQualityAssertions"].assertions
        if a.assertion == "ge_suite"
    )
    assert (suite.success, suite.column, suite.severity) == (False, "carrier", "error")
    assert not [e for e in evs if e.job.name.startswith("onering.silver__")]  # never started
    assert evs[-1].eventType.value == "FAIL"


def test_each_job_run_starts_once_and_ends_once(events: dict) -> None:
    for evs in events.values():
        by_run: dict[str, list[str]] = {}
        for event in evs:
            by_run.setdefault(event.run.runId, []).append(event.eventType.value)
        assert all(states[0] == "START" and len(states) == 2 for states in by_run.values())


# --- transports ---------------------------------------------------------------------------


class Endpoint:
    """A loopback HTTP server recording each request and answering ``status``."""

    def __init__(self, status: int = 201) -> None:
        self.status, self.requests = status, []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests.append((self.path, dict(self.headers), body.decode()))
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def test_http_endpoint_gets_every_event_with_the_key_only_in_its_header(
    document: dict, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record = record_of(document, "SUCCESS", airflow=True)
    env = {"ONERING_OPENLINEAGE_URL": endpoint.url, "ONERING_OPENLINEAGE_API_KEY": SECRET}
    count = emit_run(document, record, env)
    assert count == len(run_events(document, record)) == len(endpoint.requests)
    for path, headers, body in endpoint.requests:
        assert path == "/api/v1/lineage"
        assert headers["Authorization"] == f"Bearer {SECRET}"
        assert SECRET not in body
        parse(body)
    assert SECRET not in caplog.text


def test_openmetadata_endpoint_path_and_jwt(
    document: dict, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record = record_of(document, "SUCCESS", airflow=False)
    env = {
        "ONERING_OPENLINEAGE_TARGET": "openmetadata",
        "ONERING_OPENMETADATA_URL": f"{endpoint.url}/api",
        "ONERING_OPENMETADATA_JWT": SECRET,
    }
    assert configured(env)
    assert emit_run(document, record, env) == len(endpoint.requests) > 0
    assert {p for p, _, _ in endpoint.requests} == {"/api/v1/openlineage/lineage"}
    assert {h["Authorization"] for _, h, _ in endpoint.requests} == {f"Bearer {SECRET}"}
    assert all(SECRET not in body for _, _, body in endpoint.requests)
    assert SECRET not in caplog.text
    del env["ONERING_OPENMETADATA_JWT"]
    with pytest.raises(OpenLineageError, match="ONERING_OPENMETADATA_JWT") as error:
        emit_run(document, record, env)
    assert (error.value.target, error.value.retryable) == ("config", False)


def test_http_errors_are_one_clear_exception(document: dict, endpoint: Endpoint) -> None:
    record = record_of(document, "SUCCESS", airflow=True)
    env = {
        "ONERING_OPENLINEAGE_URL": endpoint.url,
        "ONERING_OPENLINEAGE_API_KEY": SECRET,
        "ONERING_OPENLINEAGE_RETRIES": "1",
    }
    endpoint.status = 401
    with pytest.raises(OpenLineageError, match="HTTP 401 \\(check the token\\)") as error:
        emit_run(document, record, env)
    assert (error.value.retryable, error.value.emitted) == (False, 0)
    assert SECRET not in str(error.value)
    endpoint.status = 503
    with pytest.raises(OpenLineageError, match="after its retries") as error:
        emit_run(document, record, env)
    assert error.value.retryable
    assert len(endpoint.requests) == 1 + 2  # one 401, then a 503 tried twice


def test_unreachable_endpoint_fails_fast_and_retryable(document: dict) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "ONERING_OPENLINEAGE_URL": f"http://user:{SECRET}@127.0.0.1:{port}",
        "ONERING_OPENLINEAGE_RETRIES": "2",
        "ONERING_OPENLINEAGE_TIMEOUT": "2",
    }
    started = time.monotonic()
    with pytest.raises(OpenLineageError, match="unreachable") as error:
        emit_run(document, document["runs"][0], env)
    assert time.monotonic() - started < 10
    assert (error.value.target, error.value.retryable) == ("http", True)
    assert SECRET not in str(error.value) and f"127.0.0.1:{port}" in str(error.value)


def test_configuration(tmp_path: Path) -> None:
    assert not configured({})
    assert configured({"ONERING_OPENLINEAGE_URL": "http://marquez:5000"})
    assert configured({"ONERING_OPENLINEAGE_FILE": str(tmp_path / "ol.jsonl")})
    assert not configured({"ONERING_OPENLINEAGE_TARGET": "openmetadata"})
    with pytest.raises(OpenLineageError, match="not an http"):
        emit_run(
            {"entities": [], "edges": [], "pipelines": []},
            {"run_id": str(uuid.uuid4()), "pipeline": "x", "status": "SUCCESS", "start": None},
            {"ONERING_OPENLINEAGE_URL": "marquez:5000"},
        )


def test_the_strict_parser_rejects_broken_events(document: dict) -> None:
    record = record_of(document, "SUCCESS", airflow=False)
    done = find(
        run_events(document, record), "onering.gold__carrier_monthly_performance.checks", "COMPLETE"
    )
    good = json.loads(Serde.to_json(done))
    parse(json.dumps(good))

    def broken(change: Any) -> str:
        data = json.loads(json.dumps(good))
        change(data)
        return json.dumps(data)

    dq = good["inputs"][0]["inputFacets"]["dataQualityAssertions"]
    cases = {
        "unknown field": lambda d: d["job"].update(owner="x"),
        "missing required": lambda d: d["run"].pop("runId"),
        "not a UUID": lambda d: d["run"].update(runId="run-1"),
        "wrong type": lambda d: d["inputs"][0]["inputFacets"]["dataQualityAssertions"][
            "assertions"
        ][0].update(success="yes"),
        "facet misplaced": lambda d: d["inputs"][0].update(
            inputFacets={}, facets={**d["inputs"][0]["facets"], "dataQualityAssertions": dq}
        ),
        "unknown facet": lambda d: d["run"]["facets"]["parent"].update(
            _schemaURL="https://example.com/X.json#/$defs/X"
        ),
        "date without time": lambda d: d.update(eventTime="2026-12-01"),
    }
    for name, change in cases.items():
        with pytest.raises((AssertionError, ValueError, TypeError)):
            parse(broken(change))
            pytest.fail(f"accepted: {name}")
