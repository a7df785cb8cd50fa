"""The publisher's requests: the exact sequence of a first publish, what lands on the server,
and that an unchanged second publish writes nothing.

No OpenMetadata server can run on these machines; the loopback server of ``om_server.py``
stands in (it checks bodies against OpenMetadata 2.0.7's schemas and answers as it does).
The document is built from the real definitions and exported DAGs, with constructed runs.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.catalog.om_fixture import call
from tests.catalog.publish_fixture import Published
from tests.catalog.test_publish_support import (
    AIRFLOW_EXECUTION,
    SECRET,
    assert_no_secret,
    catalog_edges,
    need_om_env,
    task_pipeline,
)


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
    entities = doc["entities"]
    tables = [e for e in entities if e["entity"] == "table"]
    checks = sum(len(t["checks"]) for t in tables)
    service_paths = {
        "storage": "storageServices",
        "database": "databaseServices",
        "pipeline": "pipelineServices",
        "mlmodel": "mlmodelServices",
    }
    expected = (
        [("PUT", "/v1/classifications")]
        # OneRing.managed, then a tag per layer
        + [("PUT", "/v1/tags")] * (1 + len({e["layer"] for e in entities}))
        + [("PUT", "/v1/dataQuality/testDefinitions")]
        # The services by name, but Feast's: OpenMetadata has no feature-store service.
        + [
            ("PUT", f"/v1/services/{service_paths[s['kind']]}")
            for s in doc["services"]
            if s["kind"] != "featureStore"
        ]
        + [("PUT", "/v1/databases")] * len({(t["service"], t["database"]) for t in tables})
        + [("PUT", "/v1/databaseSchemas")] * len({(t["database"], t["schema"]) for t in tables})
        # onering_lake.bronze, .features and .ml: one root container per lake folder
        + [("PUT", "/v1/containers")]
        * len({e["schema"] for e in entities if e["entity"] == "container"})
        + [("PUT", "/v1/pipelines")] * len(doc["pipelines"])
        + [
            ("PUT", "/v1/containers" if e["entity"] == "container" else "/v1/tables")
            for e in entities
            if e["entity"] in ("table", "container")
        ]
        # the model last: its features reference the containers and tables by id
        + [("PUT", "/v1/mlmodels") for e in entities if e["entity"] == "mlmodel"]
    )
    assert writes[: len(expected)] == expected
    rest = writes[len(expected) :]
    edges = len(catalog_edges(doc))
    assert rest[:edges] == [("PUT", "/v1/lineage")] * edges
    rest = rest[edges:]
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
        if kind == "featureView":  # not an entity in OpenMetadata (test_publish_ml)
            continue
        found = server.entity(kind, entity["fqn"])
        assert found is not None, entity["fqn"]
        if kind != "mlmodel":  # a model's features: test_publish_ml
            model = found["columns"] if kind == "table" else found.get("dataModel") or {}
            columns = model if kind == "table" else model.get("columns", [])
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
    expected = catalog_edges(doc)
    assert set(edges) == set(expected)
    dagster = server.entity("pipeline", "onering_dagster.onering")
    assert dagster is not None
    for pair, columns in expected.items():
        details = edges[pair]
        assert details is not None, pair  # OneRing's details, not a bare server-made edge
        got = {(tuple(c["fromColumns"]), c["toColumn"]) for c in details.get("columnsLineage", [])}
        assert got == columns, pair
        assert details["pipeline"]["id"] == dagster["id"]
        assert details["description"].startswith("Produced by ")
    by_key = {e["key"]: e["fqn"] for e in doc["entities"]}
    for edge in doc["edges"]:
        pair = (by_key[edge["from"]], by_key[edge["to"]])
        if pair in edges:
            assert (edges[pair] or {}).get("sqlQuery") == edge["sql"]


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
    # Checks of containers, Feast views and models are not test cases; the summary says so.
    untested = [e for e in doc["entities"] if e["entity"] != "table" and e["checks"]]
    count = sum(len(e["checks"]) for e in untested)
    assert any(
        w.startswith(f"{count} checks of ") and "are not test cases" in w
        for w in published.first.summary["warnings"]
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
