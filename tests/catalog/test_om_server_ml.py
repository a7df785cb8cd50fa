"""The loopback server's ML slice: ML model services, models, their features and lineage.

What it follows from OpenMetadata's ``MlModelRepository`` and ``LineageRepository``: a model
lives under an ML model service (``<service>.<model>``), its features get FQNs under it and
each feature source one under the entity its ``dataSource`` names; a ``dataSource`` must
exist (404); creating a model draws a detail-less edge from each feature source's entity
(``setMlFeatureSourcesLineage``), which a lineage PUT then gives details; a model's lineage
"columns" are its features. No OpenMetadata server can run on these machines.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.catalog.om_fixture import call, om_server  # noqa: F401 (pytest fixture, used by name)
from tests.catalog.om_server import OMServer
from tests.catalog.test_om_server import SCHEMA, TAG, put, seed

MODEL = "onering_mlflow.flight_late_arrival"
MISSING = "5b1e1c1e-0000-4000-8000-000000000000"


def _model(table: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A model with a categorical and a numerical feature read from ``table``."""
    source = {"id": table["id"], "type": "table", "fullyQualifiedName": table["fullyQualifiedName"]}
    return {
        "name": "flight_late_arrival",
        "service": "onering_mlflow",
        "algorithm": "LogisticRegression",
        "target": "late",
        "mlFeatures": [
            {
                "name": "carrier",
                "dataType": "categorical",
                "featureSources": [{"name": "carrier", "dataType": "string", "dataSource": source}],
            },
            {
                "name": "dep_delay",
                "dataType": "numerical",
                "featureSources": [{"name": "dep_delay", "dataType": "integer"}],
            },
        ],
        "tags": [TAG],
        **extra,
    }


def _seed_ml(server: OMServer) -> dict[str, dict[str, Any]]:
    made = seed(server)
    put(server, "services/mlmodelServices", {"name": "onering_mlflow", "serviceType": "Mlflow"})
    return made


def test_a_model_lives_under_its_service_with_features_named_under_it(
    om_server: OMServer,  # noqa: F811
) -> None:
    flights = _seed_ml(om_server)["flights"]
    status, model = call(om_server, "PUT", "/v1/mlmodels", _model(flights, sourceHash="h1"))
    assert status == 201, model
    assert model["fullyQualifiedName"] == MODEL and model["serviceType"] == "Mlflow"
    carrier, delay = model["mlFeatures"]
    assert carrier["fullyQualifiedName"] == f"{MODEL}.carrier"
    assert carrier["featureSources"][0]["fullyQualifiedName"] == f"{SCHEMA}.flights.carrier"
    assert delay["featureSources"][0]["fullyQualifiedName"] == "dep_delay"  # no dataSource
    assert "sourceHash" in model  # as for tables: answered without ?fields=
    again = call(om_server, "PUT", "/v1/mlmodels", _model(flights, sourceHash="h1"))
    assert again[0] == 200 and again[1]["version"] == 0.1
    listed = call(om_server, "GET", "/v1/mlmodels?service=onering_mlflow&fields=tags,owners")
    assert [m["name"] for m in listed[1]["data"]] == ["flight_late_arrival"]
    assert call(om_server, "GET", "/v1/mlmodels?service=nope")[1]["data"] == []


def test_creating_a_model_draws_its_feature_lineage_which_a_put_gives_details(
    om_server: OMServer,  # noqa: F811
) -> None:
    made = _seed_ml(om_server)
    flights = made["flights"]
    model = put(om_server, "mlmodels", _model(flights))
    pair = (f"{SCHEMA}.flights", MODEL)
    assert om_server.edges() == {pair: None}  # a bare relationship, no lineageDetails
    path = f"/v1/lineage/mlmodel/name/{quote(MODEL, safe='')}?upstreamDepth=1&downstreamDepth=0"
    code, lineage = call(om_server, "GET", path)
    assert code == 200
    (bare,) = lineage["upstreamEdges"]
    assert bare == {"fromEntity": flights["id"], "toEntity": model["id"]}
    assert call(om_server, "GET", f"/v1/lineage/getLineageEdge/{flights['id']}/{model['id']}")[
        0
    ] == (404)
    details = {
        "columnsLineage": [
            {"fromColumns": [f"{SCHEMA}.flights.carrier"], "toColumn": f"{MODEL}.carrier"}
        ],
        "pipeline": {"id": made["pipeline"]["id"], "type": "pipeline"},
    }
    body = {
        "edge": {
            "fromEntity": {"id": flights["id"], "type": "table"},
            "toEntity": {"id": model["id"], "type": "mlmodel"},
            "lineageDetails": details,
        }
    }
    assert call(om_server, "PUT", "/v1/lineage", body)[0] == 200
    stored = om_server.edges()[pair]
    assert stored is not None and stored["columnsLineage"] == details["columnsLineage"]
    # An update of the model draws nothing more (only its creation does).
    put(om_server, "mlmodels", _model(flights, description="Late or not."))
    assert list(om_server.edges()) == [pair]
    code, _ = call(om_server, "DELETE", f"/v1/lineage/table/{flights['id']}/mlmodel/{model['id']}")
    assert code == 200 and om_server.edges() == {}


def test_broken_models_and_model_lineage_are_refused(om_server: OMServer) -> None:  # noqa: F811
    made = _seed_ml(om_server)
    flights, summary = made["flights"], made["summary"]
    unknown = _model({"id": MISSING, "fullyQualifiedName": "x"})
    assert call(om_server, "PUT", "/v1/mlmodels", unknown) == (
        404,
        {"code": 404, "message": f"table instance for {MISSING} not found"},
    )
    bad_type = _model(flights)
    bad_type["mlFeatures"][0]["dataType"] = "text"
    status, answer = call(om_server, "PUT", "/v1/mlmodels", bad_type)
    assert status == 400 and "'text' is not one of" in answer["message"]
    no_service = {k: v for k, v in _model(flights).items() if k != "service"}
    assert call(om_server, "PUT", "/v1/mlmodels", no_service)[0] == 400
    elsewhere = _model(flights, service="onering_clickhouse")
    assert call(om_server, "PUT", "/v1/mlmodels", elsewhere)[0] == 404  # not an ML service
    bad_service = {"name": "x", "serviceType": "MLflow"}
    assert call(om_server, "PUT", "/v1/services/mlmodelServices", bad_service)[0] == 400
    model = put(om_server, "mlmodels", _model(flights))
    not_a_feature = {
        "edge": {
            "fromEntity": {"id": summary["id"], "type": "table"},
            "toEntity": {"id": model["id"], "type": "mlmodel"},
            "lineageDetails": {
                "columnsLineage": [
                    {"fromColumns": [f"{SCHEMA}.summary.carrier"], "toColumn": f"{MODEL}.late"}
                ]
            },
        }
    }
    assert call(om_server, "PUT", "/v1/lineage", not_a_feature) == (
        400,
        {"code": 400, "message": f"Invalid fully qualified column name {MODEL}.late"},
    )
    assert (f"{SCHEMA}.summary", MODEL) not in om_server.edges()
