"""The BentoML service on a real champion, answering real HTTP requests on 127.0.0.1.

The champion and the server are the session's (tests/ml/conftest.py): the real
``ml/flight_late_arrival`` asset trained on January 2013 and tested on February (gate floor
0.60 for this two-month sample), gated and promoted in MLflow on SQLite, over the Jan–Feb
Feast online store; `bentoml serve`, as `onering serve` runs it, on a free loopback port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from onering_assets.ml import gate, inputs, serving_schema
from onering_assets.ml.serving_app import MAX_BODY_BYTES
from onering_assets.ml.serving_model import ServingSpec, load_champion, registry_for
from onering_assets.ml.serving_server import Server
from onering_assets.ml.training import load_job
from onering_assets.resources.mlflow import mlflow_resource
from onering_assets.settings import Settings
from tests.conftest import silver_query
from tests.ml.conftest import Champion

KNOWN = {"carrier": "UA", "origin": "EWR", "dest": "ORD", "sched_dep_at": "2013-02-25T08:00"}


@pytest.fixture(scope="module")
def settings(champion: Champion) -> Settings:
    return champion.settings


@pytest.fixture(scope="module")
def spec(champion: Champion) -> ServingSpec:
    return load_champion(registry_for(champion.settings)).spec


@pytest.fixture(scope="module")
def http(service: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def flights(settings: Settings) -> list[dict[str, str]]:
    """40 real February flights (a fixed pseudo-random pick), and two the store never saw."""
    rows = silver_query(
        settings,
        "SELECT carrier, origin, dest, formatDateTime(sched_dep_at, '%Y-%m-%dT%H:%i') "
        "FROM silver.flights WHERE toMonth(flight_date) = 2 "
        "ORDER BY cityHash64(carrier, flight, sched_dep_at) LIMIT 40",
    )
    real: list[dict[str, str]] = [
        {field: str(value) for field, value in zip(inputs.REQUEST_FIELDS, r, strict=True)}
        for r in rows
    ]
    unknown = [
        {"carrier": "ZZ", "origin": "JFK", "dest": "LAX", "sched_dep_at": "2013-02-27T17:05"},
        {"carrier": "DL", "origin": "LGA", "dest": "XXX", "sched_dep_at": "2013-02-27T06:00"},
    ]
    return real + unknown


def test_predict_answers_a_probability_with_the_champions_version(
    http: httpx.Client, champion: Champion
) -> None:
    response = http.post("/predict", json=KNOWN)
    assert response.status_code == 200, response.text
    body = serving_schema.Prediction.model_validate(response.json())
    assert 0.0 < body.probability < 1.0
    assert body.late == (body.probability >= 0.5)
    assert body.model_version == champion.version
    assert body.fallbacks == []


def test_answers_equal_the_spark_models_within_the_gates_tolerance(
    http: httpx.Client,
    settings: Settings,
    spark: SparkSession,
    spec: ServingSpec,
    flights: list[dict[str, str]],
) -> None:
    """The Spark model from the registry, on inputs built the training way, independently."""
    from mlflow.spark import load_model

    from onering_assets.features.retrieval import feature_store, online_features

    response = http.post("/predict_batch", json={"flights": flights})
    assert response.status_code == 200, response.text
    served = np.array([p["probability"] for p in response.json()["predictions"]])

    keys = [{k: f[k] for k in ("carrier", "origin", "dest")} for f in flights]
    looked_up = pd.DataFrame(online_features(feature_store(settings), keys, spec.feature_refs))
    derived = pd.DataFrame([inputs.derived(f["sched_dep_at"]) for f in flights])
    frame = inputs.model_frame(pd.concat([looked_up, derived], axis=1), spec.fill_values)
    mlflow_resource(settings).client()
    model = load_model(f"models:/{inputs.MODEL_NAME}@champion")
    expected = load_job().probabilities(spark, model, frame)

    assert spec.tolerance == gate.DEFAULT_GATE.onnx_tolerance
    assert np.abs(served - expected).max() <= spec.tolerance
    assert served.std() > 0.01  # different flights, different answers


def test_batch_answers_in_order_as_single_requests_do(
    http: httpx.Client, flights: list[dict[str, str]]
) -> None:
    batch = http.post("/predict_batch", json={"flights": flights[:5]}).json()
    singles = [http.post("/predict", json=f).json() for f in flights[:5]]
    assert batch["model_version"] == singles[0]["model_version"]
    # One ONNX call over 5 rows vs 5 calls of one: float32 sums may differ in the last bits.
    for answer, single in zip(batch["predictions"], singles, strict=True):
        assert answer["probability"] == pytest.approx(single["probability"], abs=1e-6)
        assert {**answer, "probability": 0} == {**single, "probability": 0}
    serving_schema.BatchPrediction.model_validate(batch)


def test_an_unknown_carrier_is_answered_with_the_fallback_stated(
    http: httpx.Client, spec: ServingSpec
) -> None:
    flight = {**KNOWN, "carrier": "zz"}  # codes are upper-cased
    response = http.post("/predict", json=flight)
    assert response.status_code == 200, response.text
    fallbacks = {f["kind"]: f for f in response.json()["fallbacks"]}
    assert set(fallbacks) == {"unseen_category", "no_online_row"}
    assert fallbacks["unseen_category"]["subject"] == "carrier"
    assert "'ZZ' was not in the training data" in fallbacks["unseen_category"]["message"]
    missing = fallbacks["no_online_row"]
    assert missing["subject"] == "carrier_stats"
    assert "no online features for carrier=ZZ" in missing["message"]
    carrier_features = [r.partition(":")[2] for r in spec.feature_refs if r.startswith("carrier_")]
    assert missing["filled"] == {f: spec.fill_values[f] for f in carrier_features}


def test_an_unknown_airport_is_answered_with_the_route_fallback(http: httpx.Client) -> None:
    response = http.post("/predict", json={**KNOWN, "dest": "XXX"})
    assert response.status_code == 200, response.text
    fallbacks = response.json()["fallbacks"]
    assert [(f["kind"], f["subject"]) for f in fallbacks] == [
        ("unseen_category", "dest"),
        ("no_online_row", "route_stats"),
    ]
    assert "origin=EWR, dest=XXX" in fallbacks[1]["message"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({k: v for k, v in KNOWN.items() if k != "carrier"}, "carrier", "required"),
        ({**KNOWN, "origin": 7}, "origin", "expected a string code such as 'JFK', got 7"),
        ({**KNOWN, "dest": "NOT AN AIRPORT"}, "dest", "is not a carrier or airport code"),
        ({**KNOWN, "carrier": "ÜA"}, "carrier", "is not a carrier or airport code"),
        ({**KNOWN, "sched_dep_at": "2013-02-30T08:00"}, "sched_dep_at", "not an ISO 8601"),
        ({**KNOWN, "sched_dep_at": 1361779200}, "sched_dep_at", "ISO 8601"),
        ({k: v for k, v in KNOWN.items() if k != "sched_dep_at"}, "sched_dep_at", "required"),
    ],
    ids=[
        "missing-carrier",
        "origin-not-a-string",
        "bad-code",
        "non-ascii-code",
        "bad-date",
        "epoch",
        "no-date",
    ],
)
def test_an_invalid_field_gets_400_naming_it(
    http: httpx.Client, body: dict[str, Any], field: str, words: str
) -> None:
    response = http.post("/predict", json=body)
    assert response.status_code == 400
    error = serving_schema.RequestErrorBody.model_validate(response.json())
    assert error.field == field
    assert error.error.startswith(f"{field}: ") and words in error.error


def test_a_body_that_is_not_a_json_object_gets_400(http: httpx.Client) -> None:
    response = http.post(
        "/predict", content=b"not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "json" in response.text.lower()


def test_a_batch_with_one_bad_row_is_refused_naming_the_row(
    http: httpx.Client, flights: list[dict[str, str]]
) -> None:
    bad = [*flights[:3], {**flights[3], "sched_dep_at": "tomorrow"}, *flights[4:6]]
    response = http.post("/predict_batch", json={"flights": bad})
    assert response.status_code == 400
    assert response.json() == {
        "error": "flights[3].sched_dep_at: 'tomorrow' is not an ISO 8601 date-time "
        "such as 2013-10-01T08:30",
        "field": "sched_dep_at",
        "row": 3,
    }


@pytest.mark.parametrize("flights", [[], None, "UA"], ids=["empty", "missing", "not-a-list"])
def test_a_batch_without_a_list_of_flights_gets_400(http: httpx.Client, flights: Any) -> None:
    body = {} if flights is None else {"flights": flights}
    response = http.post("/predict_batch", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == "flights"


def test_the_openapi_page_documents_both_routes_and_the_answer(http: httpx.Client) -> None:
    spec = http.get("/docs.json").json()
    assert {"/predict", "/predict_batch"} <= set(spec["paths"])
    answer = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]
    schema = answer["application/json"]["schema"]
    assert schema["title"] == "Prediction"
    assert schema["required"] == ["probability", "late", "model_version", "fallbacks"]
    assert "Fallback" in spec["components"]["schemas"]


def test_a_body_over_the_limit_gets_413_before_it_is_parsed(http: httpx.Client) -> None:
    """Review m2: declared (Content-Length) or streamed (chunked), 4 MiB is the most."""
    big = b'{"flights": [' + b'{"carrier": "UA", "origin": "EWR"},' * 130_000 + b"{}]}"
    assert len(big) > MAX_BODY_BYTES
    headers = {"Content-Type": "application/json"}
    declared = http.post("/predict_batch", content=big, headers=headers)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65_536):
            yield big[start : start + 65_536]

    streamed = http.post("/predict_batch", content=chunks(), headers=headers)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["field"] == "body"
        assert f"at most {MAX_BODY_BYTES} a request" in response.json()["error"]
    assert http.post("/predict", json=KNOWN).status_code == 200  # still serving


def test_single_requests_are_answered_while_a_large_batch_runs(
    service: Server, flights: list[dict[str, str]]
) -> None:
    """Review m1: the batch handler runs in a thread, not on the event loop."""
    batch = {"flights": (flights * 250)[:10_000]}
    done: list[float] = []

    def run_batch() -> None:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            assert client.post("/predict_batch", json=batch).status_code == 200
        done.append(time.perf_counter())

    with httpx.Client(base_url=service.url, timeout=60) as client:
        thread = threading.Thread(target=run_batch)
        thread.start()
        time.sleep(0.05)  # the batch is on the server
        answered = []
        while thread.is_alive() and len(answered) < 5:
            assert client.post("/predict", json=KNOWN).status_code == 200
            answered.append(time.perf_counter())
        thread.join(60)
    assert done and answered and answered[0] < done[0], (answered, done)


def test_the_index_page_loads_no_third_party_tracker(http: httpx.Client) -> None:
    """BentoML's page embeds Google Tag Manager; the service strips it (new-user review)."""
    page = http.get("/")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "googletagmanager" not in page.text and "Google Tag Manager" not in page.text
    assert int(page.headers["content-length"]) == len(page.content)
    head = http.head("/")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(page.content))
    ranged = http.get("/", headers={"Range": "bytes=0-300"})  # never a partial, tracked page
    assert ranged.status_code == 200 and ranged.content == page.content


def test_onering_serve_on_a_busy_port_says_so_in_one_line(
    service: Server, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from onering_assets.cli import app

    monkeypatch.setenv("ONERING_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("ONERING_PROFILE", "local")
    port = service.url.rsplit(":", 1)[1]
    result = CliRunner().invoke(app, ["serve", "--port", port])
    assert result.exit_code == 1, result.output
    assert f"cannot start the prediction service on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
