"""The loopback OpenMetadata server refuses what OpenMetadata 2.0.7 refuses, with its error bodies.

No OpenMetadata server can run on these machines (it ships only as container images and release
archives); these hand-broken requests pin the loopback stand-in's checks: OpenMetadata's JSON
schemas (vendored in ``om_spec/``), its references (404) and its own 400s.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.catalog.om_fixture import call, om_server  # noqa: F401 (pytest fixture, used by name)
from tests.catalog.om_server import OMServer
from tests.catalog.test_om_server import COLUMNS, SCHEMA, TAG, edge, put, seed

BROKEN: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "column without dataType",
        "tables",
        {"name": "t", "databaseSchema": SCHEMA, "columns": [{"name": "c"}]},
        400,
        "'dataType' is a required property",
    ),
    (
        "table without columns",
        "tables",
        {"name": "t", "databaseSchema": SCHEMA},
        400,
        "'columns' is a required property",
    ),
    (
        "bad data type",
        "tables",
        {"name": "t", "databaseSchema": SCHEMA, "columns": [{"name": "c", "dataType": "INTEGER"}]},
        400,
        "'INTEGER' is not one of",
    ),
    (
        "bad serviceType",
        "services/databaseServices",
        {"name": "x", "serviceType": "ClickHouse"},
        400,
        "'ClickHouse' is not one of",
    ),
    (
        "unknown field",
        "databases",
        {"name": "d", "service": "onering_clickhouse", "owner": "me"},
        400,
        "Additional properties are not allowed",
    ),
    (
        "name with ::",
        "databases",
        {"name": "a::b", "service": "onering_clickhouse"},
        400,
        "does not match",
    ),
    (
        "sourceHash over 32",
        "databases",
        {"name": "d", "service": "onering_clickhouse", "sourceHash": "x" * 33},
        400,
        "is too long",
    ),
    (
        "unknown service",
        "databases",
        {"name": "d", "service": "nope"},
        404,
        "databaseService instance for nope not found",
    ),
    (
        "unknown schema",
        "tables",
        {"name": "t", "databaseSchema": "a.b.c", "columns": COLUMNS},
        404,
        "databaseSchema instance for a.b.c not found",
    ),
    (
        "unknown tag",
        "tables",
        {
            "name": "t",
            "databaseSchema": SCHEMA,
            "columns": COLUMNS,
            "tags": [{**TAG, "tagFQN": "OneRing.nope"}],
        },
        404,
        "tag instance for OneRing.nope not found",
    ),
    (
        "tag label without state",
        "tables",
        {
            "name": "t",
            "databaseSchema": SCHEMA,
            "columns": COLUMNS,
            "tags": [{k: v for k, v in TAG.items() if k != "state"}],
        },
        400,
        "'state' is a required property",
    ),
    (
        "repeated column",
        "tables",
        {"name": "t", "databaseSchema": SCHEMA, "columns": COLUMNS + COLUMNS[:1]},
        400,
        "Column name carrier is repeated",
    ),
    (
        "unknown test definition",
        "dataQuality/testCases",
        {"name": "c", "testDefinition": "nope", "entityLink": f"<#E::table::{SCHEMA}.flights>"},
        404,
        "testDefinition instance for nope not found",
    ),
    (
        "test case on a missing column",
        "dataQuality/testCases",
        {
            "name": "c",
            "testDefinition": "columnValuesToBeNotNull",
            "entityLink": f"<#E::table::{SCHEMA}.flights::columns::nope>",
        },
        400,
        "Invalid column name nope",
    ),
]


@pytest.mark.parametrize(
    ("case", "collection", "body", "status", "message"), BROKEN, ids=[b[0] for b in BROKEN]
)
def test_hand_broken_bodies_are_refused(
    om_server: OMServer,  # noqa: F811
    case: str,
    collection: str,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    seed(om_server)
    got_status, answer = call(om_server, "PUT", f"/v1/{collection}", body)
    assert (got_status, answer["code"]) == (status, status), (case, answer)
    assert message in answer["message"], answer["message"]


def test_broken_lineage_is_refused(om_server: OMServer) -> None:  # noqa: F811
    made = seed(om_server)
    flights, summary = made["flights"], made["summary"]
    missing = {"id": "5b1e1c1e-0000-4000-8000-000000000000", "type": "table"}
    status, answer = call(
        om_server,
        "PUT",
        "/v1/lineage",
        {
            "edge": {
                "fromEntity": flights and {"id": flights["id"], "type": "table"},
                "toEntity": missing,
            }
        },
    )
    assert (status, answer["message"]) == (404, f"table instance for {missing['id']} not found")
    bad_column = edge(
        flights,
        summary,
        columnsLineage=[
            {"fromColumns": [f"{SCHEMA}.flights.nope"], "toColumn": f"{SCHEMA}.summary.carrier"}
        ],
    )
    assert call(om_server, "PUT", "/v1/lineage", bad_column) == (
        400,
        {"code": 400, "message": f"Invalid fully qualified column name {SCHEMA}.flights.nope"},
    )
    wrong_side = edge(
        flights,
        summary,
        columnsLineage=[
            {
                "fromColumns": [f"{SCHEMA}.flights.carrier"],
                "toColumn": f"{SCHEMA}.summary.dep_delay",
            }
        ],
    )
    assert call(om_server, "PUT", "/v1/lineage", wrong_side)[0] == 400
    no_pipeline = edge(flights, summary, pipeline={"id": missing["id"], "type": "pipeline"})
    assert (
        call(om_server, "PUT", "/v1/lineage", no_pipeline)[1]["message"]
        == f"pipeline instance for {missing['id']} not found"
    )
    assert call(om_server, "PUT", "/v1/lineage", edge(flights, summary, source="Dagster"))[0] == 400
    assert om_server.edges() == {}


def test_post_of_an_existing_entity_is_409_and_unknown_names_404(om_server: OMServer) -> None:  # noqa: F811
    seed(om_server)
    body = {"name": "flights", "databaseSchema": SCHEMA, "columns": COLUMNS}
    assert call(om_server, "POST", "/v1/tables", body) == (
        409,
        {"code": 409, "message": "Entity already exists"},
    )
    assert call(om_server, "GET", f"/v1/tables/name/{SCHEMA}.nope") == (
        404,
        {"code": 404, "message": f"table instance for {SCHEMA}.nope not found"},
    )
    assert call(om_server, "GET", "/v1/users/name/ghost")[0] == 404
    assert call(om_server, "GET", "/v1/users/name/onering-owner")[1]["name"] == "onering-owner"
    assert call(om_server, "GET", "/v1/search/query?q=x") == (
        404,
        {"code": 404, "message": "HTTP 404 Not Found"},
    )
    assert (
        om_server.requests[-1].path == "/v1/search/query" and om_server.requests[-1].status == 404
    )


def test_fields_are_gated_and_checked(om_server: OMServer) -> None:  # noqa: F811
    seed(om_server)
    put(
        om_server,
        "tables",
        {"name": "flights", "databaseSchema": SCHEMA, "columns": COLUMNS, "tags": [TAG]},
    )
    status, bare = call(om_server, "GET", f"/v1/tables/name/{SCHEMA}.flights")
    assert status == 200 and "columns" not in bare and "tags" not in bare
    full = call(om_server, "GET", f"/v1/tables/name/{SCHEMA}.flights?fields=columns,tags,owners")[1]
    assert full["tags"] == [TAG] and full["owners"] == [] and len(full["columns"]) == 2
    assert (
        call(om_server, "GET", f"/v1/tables/name/{SCHEMA}.flights?fields=tasks")[1]["message"]
        == "Invalid field name tasks"
    )
