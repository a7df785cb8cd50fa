"""The publisher's requests: the exact sequence of a first publish, what lands on the server,
and that an unchanged second publish writes nothing.

No OpenMetadata server can run on these machines; the loopback server of ``om_server.py``
stands in (it checks bodies against OpenMetadata 2.0.7's schemas and answers as it does).
The document is built from the real definitions and exported DAGs, with constructed runs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.catalog.om_fixture import call
from tests.catalog.om_server import OMServer
from tests.catalog.test_publish_support import (
    AIRFLOW_EXECUTION,
    SECRET,
    Result,
    assert_no_secret,
    demo_document,
    need_om_env,
    publish,
    task_pipeline,
)


@dataclass
class Published:
    document: dict[str, Any]
    server: OMServer
    dry: Result
    dry_requests: list[dict[str, Any]]
    first: Result
    first_log: list[Any]
    second: Result
    second_log: list[Any]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """A dry run, then a first and a second publish of the demo document to one server."""
    need_om_env()
    work = tmp_path_factory.mktemp("publish")
    document = demo_document(work)
    path = work / "document.json"
    path.write_text(json.dumps(document))
    server = OMServer(users=("onering-owner",), teams=("data-platform",)).start()
    try:
        dry = publish(path, None, dry_run=work / "dry.json")
        dry_requests = json.loads((work / "dry.json").read_text())["requests"]
        first = publish(path, server)
        first_log = list(server.requests)
        server.reset_log()
        # PYTHONPROFILEIMPORTTIME (python -X importtime): stderr names every imported module.
        second = publish(path, server, env={"PYTHONPROFILEIMPORTTIME": "1"})
        second_log = list(server.requests)
        yield Published(document, server, dry, dry_requests, first, first_log, second, second_log)
    finally:
        server.stop()


def _shape(body: Any) -> Any:
    """A body without ids (the dry run's empty server answers placeholder ids) and owners
    (an empty server knows no teams; the loopback server here knows ``data-platform``)."""
    if isinstance(body, dict):
        return {k: _shape(v) for k, v in body.items() if k not in ("id", "owners")}
    if isinstance(body, list):
        return [_shape(v) for v in body]
    return body


def _comparable(method: str, path: str, body: Any) -> tuple[str, str, Any]:
    """A request as compared between the dry run and the server's log.

    Lineage bodies are compared by their SQL only: the loopback server's log keeps the body
    object its lineage store then expands and merges (pipeline reference, column pairs).
    """
    if path == "/v1/lineage" and isinstance(body, dict):
        return method, path, body["edge"]["lineageDetails"].get("sqlQuery")
    return method, path, _shape(body)


def test_dry_run_lists_the_requests_of_a_publish_to_an_empty_server(published: Published) -> None:
    assert published.dry.code == 0, published.dry.stderr
    assert published.dry.summary["ok"] is True
    assert published.dry.summary["dry_run"].endswith("dry.json")
    assert published.dry.summary["requests"] == len(published.dry_requests)
    # The same requests, in the same order, as the real first publish sent.
    sent = [_comparable(r.method, r.path, r.body) for r in published.first_log]
    listed = [
        _comparable(r["method"], unquote(urlsplit(r["path"]).path), r["body"])
        for r in published.dry_requests
    ]
    assert listed == sent


def test_first_publish_request_sequence(published: Published) -> None:
    assert published.first.code == 0, published.first.stderr
    log = [(r.method, r.path) for r in published.first_log]
    writes = [(m, p) for m, p in log if m != "GET"]
    doc = published.document
    tables = [e for e in doc["entities"] if e["entity"] == "table"]
    checks = sum(len(t["checks"]) for t in tables)
    entity_writes = [
        ("PUT", "/v1/containers" if e["entity"] == "container" else "/v1/tables")
        for e in doc["entities"]
    ]
    expected = (
        [("PUT", "/v1/classifications")]
        + [("PUT", "/v1/tags")] * 4
        + [("PUT", "/v1/dataQuality/testDefinitions")]
        + [
            ("PUT", "/v1/services/pipelineServices"),  # onering_airflow
            ("PUT", "/v1/services/databaseServices"),  # onering_clickhouse
            ("PUT", "/v1/services/pipelineServices"),  # onering_dagster
            ("PUT", "/v1/services/storageServices"),  # onering_lake
            ("PUT", "/v1/services/databaseServices"),  # onering_postgres
        ]
        + [("PUT", "/v1/databases")] * 2
        + [("PUT", "/v1/databaseSchemas")] * 2
        + [("PUT", "/v1/containers")]  # onering_lake.bronze
        + [("PUT", "/v1/pipelines")] * len(doc["pipelines"])
        + entity_writes
    )
    assert writes[: len(expected)] == expected
    rest = writes[len(expected) :]
    assert rest[: len(doc["edges"])] == [("PUT", "/v1/lineage")] * len(doc["edges"])
    rest = rest[len(doc["edges"]) :]
    suites = [t for t in tables if t["checks"]]
    assert rest[: len(suites)] == [("PUT", "/v1/dataQuality/testSuites/executable")] * len(suites)
    rest = rest[len(suites) :]
    assert rest[:checks] == [("PUT", "/v1/dataQuality/testCases")] * checks
    rest = rest[checks:]
    silver = task_pipeline(doc, "silver__airlines")
    assert rest == [
        ("PUT", f"/v1/pipelines/{silver}/status"),  # two Dagster runs, one Airflow run
        ("PUT", "/v1/pipelines/onering_dagster.onering/status"),
        *sorted(
            (
                "POST",
                f"/v1/dataQuality/testCases/testCaseResults/{fqn}",
            )
            for fqn in _result_fqns(doc)
        ),
    ]
    # Reads: one per service, database and schema; lists with fields and paging; no lineage
    # reads (every entity was created by this publish).
    assert not [p for m, p in log if m == "GET" and p.startswith("/v1/lineage")]
    lists = [r for r in published.first_log if r.method == "GET" and r.path == "/v1/tables"]
    assert {r.query["database"] for r in lists} == {
        "onering_clickhouse.clickhouse",
        "onering_postgres.onering",
    }
    assert all("sourceHash" in r.query["fields"] and r.query["limit"] for r in lists)


def _result_fqns(doc: dict[str, Any]) -> list[str]:
    tables = {e["key"]: e["fqn"] for e in doc["entities"] if e["entity"] == "table"}
    return [
        f"{tables[c['asset']]}.{c['name']}"
        for run in doc["runs"]
        for c in run["checks"]
        if c["asset"] in tables
    ]


def test_full_publish_puts_every_entity_edge_and_column_pair(published: Published) -> None:
    server, doc = published.server, published.document
    for entity in doc["entities"]:
        kind = entity["entity"]
        found = server.entity(kind, entity["fqn"])
        assert found is not None, entity["fqn"]
        columns = found["columns"] if kind == "table" else found["dataModel"]["columns"]
        assert [(c["name"], c["dataTypeDisplay"]) for c in columns] == [
            (c["name"], c["type"]) for c in entity["columns"]
        ]
        tags = {t["tagFQN"] for t in found["tags"]}
        assert {"OneRing.managed", f"OneRing.{entity['layer']}"} <= tags
        assert len(found["sourceHash"]) == 32
    flights = server.entity("table", "onering_clickhouse.clickhouse.silver.flights")
    assert flights is not None
    types = {c["name"]: (c["dataType"], c.get("constraint")) for c in flights["columns"]}
    assert types["_ingested_at"] == ("DATETIME", "NOT_NULL")
    gold = server.entity("table", "onering_postgres.onering.gold.route_performance")
    assert gold is not None
    assert {c["dataTypeDisplay"]: c["dataType"] for c in gold["columns"]}["double precision"] == (
        "DOUBLE"
    )
    edges = server.edges()
    by_key = {e["key"]: e["fqn"] for e in doc["entities"]}
    assert set(edges) == {(by_key[e["from"]], by_key[e["to"]]) for e in doc["edges"]}
    dagster = server.entity("pipeline", "onering_dagster.onering")
    assert dagster is not None
    for edge in doc["edges"]:
        details = edges[(by_key[edge["from"]], by_key[edge["to"]])]
        pairs = {(tuple(c["fromColumns"]), c["toColumn"]) for c in details["columnsLineage"]}
        assert pairs == {
            (
                tuple(f"{by_key[edge['from']]}.{f}" for f in c["from"]),
                f"{by_key[edge['to']]}.{c['to']}",
            )
            for c in edge["columns"]
        }
        assert details["sqlQuery"] == edge["sql"]
        assert details["pipeline"]["id"] == dagster["id"]


def test_full_publish_puts_pipelines_statuses_checks_and_results(published: Published) -> None:
    server, doc = published.server, published.document
    for pipeline in doc["pipelines"]:
        found = server.entity("pipeline", pipeline["fqn"])
        assert found is not None
        assert [t["name"] for t in found["tasks"]] == [t["name"] for t in pipeline["tasks"]]
    fqn = task_pipeline(doc, "silver__airlines")
    code, silver = call(server, "GET", f"/v1/pipelines/name/{fqn}?fields=pipelineStatus")
    assert code == 200
    status = silver["pipelineStatus"]
    assert status["executionId"] == AIRFLOW_EXECUTION
    assert status["executionStatus"] == "Failed"  # silver__flights failed in the second run
    assert {t["name"]: t["executionStatus"] for t in status["taskStatus"]} == {
        "silver__airlines": "Successful",
        "silver__flights": "Failed",
    }
    tables = [e for e in doc["entities"] if e["entity"] == "table"]
    for table in tables:
        for check in table["checks"]:
            case = server.entity("testCase", f"{table['fqn']}.{check['name']}")
            assert case is not None
            assert case["parameterValues"] == [
                {"name": "blocking", "value": str(check["blocking"]).lower()}
            ]
    flights = doc["runs"][1]["checks"][0]
    fqn = f"onering_clickhouse.clickhouse.silver.flights.{flights['name']}"
    path = f"/v1/dataQuality/testCases/testCaseResults/{fqn}?startTs=0&endTs=9999999999999"
    code, results = call(server, "GET", path)
    assert code == 200
    assert [(r["testCaseStatus"], r["result"]) for r in results["data"]] == [
        ("Failed", "3 duplicate keys")
    ]
    # Bronze checks are not test cases; the summary says so.
    assert any(
        "Bronze containers are not test cases" in w for w in published.first.summary["warnings"]
    )
    assert any("flight-analytics" in w for w in published.first.summary["warnings"])


def test_second_publish_of_an_unchanged_document_writes_nothing(published: Published) -> None:
    assert published.second.code == 0, published.second.stderr
    assert [r for r in published.second_log if r.method != "GET"] == []
    summary = published.second.summary
    assert (summary["ok"], summary["writes"], summary["created"], summary["updated"]) == (
        True,
        0,
        0,
        0,
    )
    assert summary["unchanged"] >= len(published.document["entities"])


def test_a_publish_that_only_reads_imports_no_openmetadata_ingestion(
    published: Published,
) -> None:
    """Reads go through a plain session; the client and models (~5 s) come with a write."""
    imported = [
        line.split("|")[-1].strip()
        for line in published.second.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "onering_catalog.api" in imported  # the profile did record the publisher
    assert [m for m in imported if m.split(".")[0] in ("metadata", "pydantic")] == []


def test_no_secret_in_any_request_log_or_dry_run(published: Published) -> None:
    token = published.server.token
    bodies = json.dumps([r.body for r in published.first_log + published.second_log])
    for result in (published.first, published.second):
        assert_no_secret(token, result.stdout, result.stderr, bodies)
    dry_text = json.dumps(published.dry_requests)
    assert_no_secret(SECRET, published.dry.stdout, published.dry.stderr, dry_text)


NATIVE = {
    "clickhouse": {
        "Nullable(String)": ("STRING", "NULL"),
        "DateTime64(3, 'UTC')": ("DATETIME", "NOT_NULL"),
        "Nullable(DateTime('America/New_York'))": ("DATETIME", "NULL"),
        "LowCardinality(Nullable(String))": ("STRING", "NULL"),
        "Decimal(10, 2)": ("DECIMAL", "NOT_NULL"),
        "Int8": ("TINYINT", "NOT_NULL"),
        "UInt64": ("UINT", "NOT_NULL"),
        "Float64": ("DOUBLE", "NOT_NULL"),
        "Array(Nullable(Int32))": ("ARRAY", "NOT_NULL"),
        "Bool": ("BOOLEAN", "NOT_NULL"),
        "Date": ("DATE", "NOT_NULL"),
    },
    "postgres": {
        "double precision": ("DOUBLE", None),
        "bigint": ("BIGINT", None),
        "int8": ("BIGINT", None),  # a Postgres int8 is a bigint, a ClickHouse Int8 a byte
        "text": ("TEXT", None),
        "date": ("DATE", None),
        "numeric(12,3)": ("NUMERIC", None),
        "timestamp(3) with time zone": ("TIMESTAMPZ", None),
        "character varying(20)": ("VARCHAR", None),
    },
}


def test_native_types_map_per_dialect_and_keep_the_native_display() -> None:
    python = need_om_env()
    script = (
        "import json, sys\n"
        "from onering_catalog.datatypes import to_column\n"
        "native = json.loads(sys.argv[1])\n"
        "print(json.dumps({d: {t: to_column('c', t, '', d) for t in ts}"
        " for d, ts in native.items()}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", script, json.dumps(NATIVE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    mapped = json.loads(done.stdout)
    for dialect, types in NATIVE.items():
        for native, (data_type, constraint) in types.items():
            column = mapped[dialect][native]
            assert (column["dataType"], column.get("constraint")) == (data_type, constraint)
            assert column["dataTypeDisplay"] == native
    assert mapped["clickhouse"]["Decimal(10, 2)"]["precision"] == 10
    assert mapped["clickhouse"]["Decimal(10, 2)"]["scale"] == 2
    assert mapped["clickhouse"]["Array(Nullable(Int32))"]["arrayDataType"] == "INT"
    assert mapped["postgres"]["character varying(20)"]["dataLength"] == 20
