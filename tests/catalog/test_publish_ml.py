"""The ML half in OpenMetadata: the MLflow model with its features and their sources, the
lake's feature and ML containers, the edges to and from them, and Feast views drawn through.

Reads the session's ``published`` server (a first and a second publish of the demo document
from the real definitions). No OpenMetadata server can run on these machines; the loopback
server of ``om_server.py`` stands in, checking each body against OpenMetadata 2.0.7's schemas
(``om_spec/``, the model's and the ML model service's included) and references (a feature
source naming an unknown entity, a column pair naming no feature: refused).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.catalog.om_fixture import call
from tests.catalog.publish_fixture import Published

MODEL_KEY = "ml/flight_late_arrival"


def _entity(published: Published, key: str) -> dict[str, Any]:
    return next(e for e in published.document["entities"] if e["key"] == key)


def _found(published: Published, entity_type: str, fqn: str) -> dict[str, Any]:
    found = published.server.entity(entity_type, fqn)
    assert found is not None, fqn
    return found


def test_the_mlflow_service_and_the_model_with_algorithm_target_tags(
    published: Published,
) -> None:
    service = _found(published, "mlmodelService", "onering_mlflow")
    assert service["serviceType"] == "Mlflow"
    assert service["connection"]["config"]["trackingUri"] == "http://mlflow:5000"
    assert "OneRing.managed" in {t["tagFQN"] for t in service["tags"]}
    doc_model = _entity(published, MODEL_KEY)
    model = _found(published, "mlmodel", doc_model["fqn"])
    assert model["service"]["name"] == "onering_mlflow" and model["serviceType"] == "Mlflow"
    assert (model["algorithm"], model["target"]) == (
        doc_model["mlmodel"]["algorithm"],
        doc_model["mlmodel"]["target"],
    )
    assert model["description"] == doc_model["description"]
    assert {t["tagFQN"] for t in model["tags"]} == {"OneRing.managed", "OneRing.ml"}
    assert len(model["sourceHash"]) == 32
    # team:ml is not a team on this server: the model has no owner, and the summary says why.
    assert "owners" not in model or model["owners"] == []
    assert (
        "owner 'team:ml' is not a user or team in OpenMetadata: left out"
        in (published.first.summary["warnings"])
    )


def test_each_feature_names_its_type_and_references_its_source_column(
    published: Published,
) -> None:
    server, doc = published.server, published.document
    doc_model = _entity(published, MODEL_KEY)
    model = _found(published, "mlmodel", doc_model["fqn"])
    by_fqn = {e["fqn"]: e for e in doc["entities"]}
    features = doc_model["mlmodel"]["features"]
    assert [(f["name"], f["dataType"]) for f in model["mlFeatures"]] == [
        (f["name"], f["type"]) for f in features
    ]
    for got, want in zip(model["mlFeatures"], features, strict=True):
        assert got["fullyQualifiedName"] == f"{doc_model['fqn']}.{want['name']}"
        sources = got["featureSources"]
        assert [s["name"] for s in sources] == [s["column"] for s in want["sources"]]
        for source, wanted in zip(sources, want["sources"], strict=True):
            held = by_fqn[wanted["entity"]]
            target = _found(published, held["entity"], held["fqn"])
            assert source["dataSource"]["id"] == target["id"]
            assert source["dataSource"]["type"] == held["entity"]
            assert source["fullyQualifiedName"] == f"{held['fqn']}.{wanted['column']}"
        if want["view"]:
            assert f"Feast view {want['view']}" in got["description"]
    types = {f["name"]: [s["dataType"] for s in f["featureSources"]] for f in model["mlFeatures"]}
    assert types["carrier"] == ["string"]  # String
    assert types["dep_hour"] == ["timestamp"]  # derived from sched_dep_at, a DateTime
    assert types["carrier_flights_28d"] == ["integer"]  # Int64
    assert types["weather_temp"] == ["number"]  # Float64
    assert server.entity("mlmodel", "onering_mlflow.nope") is None


def test_lake_folders_are_root_containers_holding_the_feature_and_ml_files(
    published: Published,
) -> None:
    containers = [e for e in published.document["entities"] if e["entity"] == "container"]
    roots = {e["schema"] for e in containers}
    # stream: the batch ledger and the Flink results; airbyte: the connections' streams
    assert roots == {"bronze", "features", "ml", "stream", "airbyte"}
    for root in roots:
        found = _found(published, "container", f"onering_lake.{root}")
        assert {"OneRing.managed", f"OneRing.{root}"} <= {t["tagFQN"] for t in found["tags"]}
    for entity in containers:
        found = published.server.entity("container", entity["fqn"], "parent,dataModel,tags")
        assert found is not None, entity["fqn"]
        assert found["parent"]["fullyQualifiedName"] == f"onering_lake.{entity['schema']}"
    training = _found(published, "container", "onering_lake.ml.training_set")
    assert training["fileFormats"] == ["parquet"]
    assert [c["name"] for c in training["dataModel"]["columns"]] == [
        c["name"] for c in _entity(published, "ml/training_set")["columns"]
    ]
    drift = _found(published, "container", "onering_lake.ml.drift_report")
    assert "dataModel" not in drift  # reports, not rows: no data model claimed
    assert drift["description"] == _entity(published, "ml/drift_report")["description"]


def test_feast_views_are_not_entities_and_edges_are_drawn_through_them(
    published: Published,
) -> None:
    server, doc = published.server, published.document
    views = [e for e in doc["entities"] if e["entity"] == "featureView"]
    assert views
    fqns = {fqn for (_, fqn) in server.state.by_fqn}
    assert not [v["fqn"] for v in views if v["fqn"] in fqns]
    assert "onering_feast" not in fqns  # no service either
    warning = next(w for w in published.first.summary["warnings"] if "Feast" in w)
    assert warning.startswith(f"{len(views)} Feast feature views are not OpenMetadata entities")
    assert all(v["fqn"] in warning for v in views)
    edges = server.edges()
    for view in views:
        source = next(e["from"] for e in doc["edges"] if e["to"] == view["key"])
        source_fqn = _entity(published, source)["fqn"]
        details = edges[(source_fqn, "onering_lake.ml.training_set")]
        assert details is not None
        assert f"Through the Feast view {view['fqn']}." in details["description"]
        pairs = {(tuple(c["fromColumns"]), c["toColumn"]) for c in details["columnsLineage"]}
        assert pairs == {
            ((f"{source_fqn}.{c['name']}",), f"onering_lake.ml.training_set.{c['name']}")
            for c in view["columns"]
        }


def test_the_model_lineage_reads_back_up_and_down(published: Published) -> None:
    server = published.server
    fqn = _entity(published, MODEL_KEY)["fqn"]
    path = f"/v1/lineage/mlmodel/name/{quote(fqn, safe='')}?upstreamDepth=1&downstreamDepth=1"
    code, lineage = call(server, "GET", path)
    assert code == 200
    names = {n["id"]: n["fullyQualifiedName"] for n in lineage["nodes"]}
    upstream = {names[e["fromEntity"]] for e in lineage["upstreamEdges"]}
    downstream = {names[e["toEntity"]] for e in lineage["downstreamEdges"]}
    sources = {
        s["entity"]
        for f in _entity(published, MODEL_KEY)["mlmodel"]["features"]
        for s in f["sources"]
    }
    assert upstream == {"onering_lake.ml.training_set", *sources}
    assert downstream == {"onering_lake.ml.drift_report"}
    feature_edge = next(
        e["lineageDetails"]
        for e in lineage["upstreamEdges"]
        if names[e["fromEntity"]] == "onering_lake.features.route_stats"
    )
    assert feature_edge["description"].endswith(
        "Source of the model's features route_flights_28d, route_late_rate_28d, "
        "route_mean_arr_delay_28d, route_distance."
    )


def test_an_unchanged_republish_reads_the_models_and_writes_nothing(
    published: Published,
) -> None:
    assert published.second.code == 0, published.second.stderr
    assert [r for r in published.second_log if r.method != "GET"] == []
    listed = [r for r in published.second_log if r.path == "/v1/mlmodels"]
    assert [(r.query["service"], r.query["include"]) for r in listed] == [("onering_mlflow", "all")]
    assert "sourceHash" in listed[0].query["fields"]
    # The first publish wrote each ML entity once: the model, its service, the roots.
    first = [(r.method, r.path) for r in published.first_log]
    assert first.count(("PUT", "/v1/mlmodels")) == 1
    assert first.count(("PUT", "/v1/services/mlmodelServices")) == 1
