"""The Streamlit app through ``streamlit.testing.v1.AppTest`` against the real Bento endpoint.

The champion and the BentoML server are the session's (tests/ml/conftest.py: the real
model assets trained on January 2013 and tested on February, served by `bentoml serve` on
127.0.0.1), the same tests/ml/test_serving.py asks. On that state the real
``ml/drift_report`` asset runs (February against the champion's January reference, from
the ``ml/training_set`` the champion was trained on), so the app shows a report the asset
wrote. Every probability the app shows is compared with what the endpoint answers to a
direct HTTP request.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from onering_assets.cli.ml_app import APP_FILE, command
from onering_assets.definitions import build_definitions
from onering_assets.ml.drift import PREDICTION_COLUMN, DriftSummary
from onering_assets.ml.drift_assets import DRIFT_KEY, DRIFTED_COLUMNS_SHARE
from onering_assets.ml.drift_store import read_summary
from onering_assets.ml.inputs import model_columns
from onering_assets.ml.serving_server import Server
from onering_assets.resources import LakeResource
from onering_assets.runner import execute
from onering_assets.settings import Settings
from onering_assets.summary import RunSummary
from tests.ml.conftest import Champion

TIMEOUT_S = 60
PROBABILITY = "P(arrives > 15 min late)"
KNOWN = {"carrier": "UA", "origin": "EWR", "dest": "ORD", "sched_dep_at": "2013-02-25T08:00"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def direct(url: str, flight: dict[str, str]) -> dict:
    response = httpx.post(f"{url}/predict", json=flight, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture(scope="module")
def settings(champion: Champion) -> Settings:
    return champion.settings


def drift_february(settings: Settings, instance: dg.DagsterInstance) -> RunSummary:
    return execute(
        build_definitions(settings),
        instance,
        assets={DRIFT_KEY},
        first="2013-02",
        last="2013-02",
        progress=False,
    )


@pytest.fixture(scope="module")
def drift_run(settings: Settings, instance: dg.DagsterInstance) -> RunSummary:
    """The real asset: February's drift report on the champion's state."""
    return drift_february(settings, instance)


@pytest.fixture(scope="module")
def report(drift_run: RunSummary, settings: Settings) -> DriftSummary:
    assert drift_run.success, drift_run.failures
    found = read_summary(LakeResource(url=settings.lake_dir.as_uri()), "2013-02")
    assert found is not None
    return found


@pytest.fixture
def app(
    settings: Settings,
    service: Server,
    report: DriftSummary,
    monkeypatch: pytest.MonkeyPatch,
) -> AppTest:
    monkeypatch.setenv("ONERING_PROFILE", "local")
    monkeypatch.setenv("ONERING_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("ONERING_SERVE_URL", service.url)
    at = AppTest.from_file(str(APP_FILE), default_timeout=TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_drift_asset_reports_february_against_the_champion_s_january(
    drift_run: RunSummary,
    report: DriftSummary,
    settings: Settings,
    champion: Champion,
    instance: dg.DagsterInstance,
) -> None:
    event = instance.get_latest_materialization_event(DRIFT_KEY)
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.partition == "2013-02"
    meta: dict[str, Any] = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert meta["model_version"] == champion.version and meta["reference_months"] == [1]
    assert meta["share_of_drifted_columns"] == round(report.share, 4)
    assert meta["drifted_columns"] == report.drifted_columns
    assert meta["dataset_drift"] == report.dataset_drift
    assert meta["reference_rows"] == 26398 and meta["current_rows"] == 23611
    # Every model input and the predicted probability, each with its test and score.
    tests = meta["column_tests"]
    assert set(tests) == {*model_columns(), PREDICTION_COLUMN}
    assert tests[PREDICTION_COLUMN]["test"] == "Wasserstein distance (normed)"
    assert tests["carrier"]["test"] == "Jensen-Shannon distance"
    # February's late rates differ from January's: the 28-day windows move with them.
    assert tests["carrier_late_rate_28d"]["drifted"]
    folder = settings.lake_dir / "ml" / "drift" / "2013-02"
    assert meta["report_html"] == (folder / "report.html").as_uri()
    assert (folder / "report.html").stat().st_size > 100_000
    assert json.loads((folder / "report.json").read_text())["metrics"]
    # The check agrees with Evidently's dataset verdict, and never fails the run.
    (check,) = [c for c in drift_run.checks if c[1] == DRIFTED_COLUMNS_SHARE]
    assert check[2] == (not report.dataset_drift) and drift_run.success


def test_an_unchanged_month_reuses_its_report_and_a_changed_key_recomputes_it(
    drift_run: RunSummary, settings: Settings, instance: dg.DagsterInstance
) -> None:
    """The same champion, rows, Evidently and code give the same report: it is not rebuilt."""
    assert drift_run.success
    folder = settings.lake_dir / "ml" / "drift" / "2013-02"
    html = folder / "report.html"

    def again() -> tuple[list[str], int]:
        summary = drift_february(settings, instance)
        assert summary.success, summary.failures
        event = instance.get_latest_materialization_event(DRIFT_KEY)
        assert event is not None and event.asset_materialization is not None
        return event.asset_materialization.metadata["reused_months"].value, html.stat().st_mtime_ns  # type: ignore[return-value]

    built = html.stat().st_mtime_ns
    assert again() == (["2013-02"], built)
    (folder / "inputs.sha256").write_text("what another champion or month was")
    reused, rebuilt = again()
    assert reused == [] and rebuilt != built
    assert again() == (["2013-02"], rebuilt)


def test_a_flight_picked_from_the_schedule_gets_the_endpoint_s_probability(
    app: AppTest,
    service: Server,
    champion: Champion,
) -> None:
    assert app.selectbox(key="day").value == "2013-02-01"  # the latest landed month
    app.selectbox(key="day").set_value("2013-02-25").run()
    flights = app.selectbox(key="flight")
    assert len(flights.options) > 500  # a weekday's departures from the three airports
    flights.set_value(100).run()
    carrier_flight, route, when = flights.options[100].split("  ")
    origin, dest = route.split(" → ")
    flight = {
        "carrier": carrier_flight.split()[0],
        "origin": origin,
        "dest": dest,
        "sched_dep_at": when.replace(" ", "T"),
    }
    app.button(key="predict").click().run()
    answer = direct(service.url, flight)
    shown = metrics(app)
    assert shown[PROBABILITY] == f"{answer['probability']:.1%}"
    assert shown["Model version"] == champion.version == answer["model_version"]
    assert shown["Verdict"] == ("late" if answer["late"] else "on time")
    assert not app.error


def test_a_typed_flight_gets_the_endpoint_s_probability(
    app: AppTest,
    service: Server,
) -> None:
    app.radio(key="source").set_value("Type one in").run()
    app.datetime_input(key="when").set_value(datetime(2013, 2, 25, 8, 0)).run()
    app.button(key="predict").click().run()
    answer = direct(service.url, KNOWN)
    assert metrics(app)[PROBABILITY] == f"{answer['probability']:.1%}"
    assert not app.info and not app.error


def test_an_unknown_carrier_shows_the_fallback_the_service_used(app: AppTest) -> None:
    app.radio(key="source").set_value("Type one in").run()
    app.text_input(key="carrier").input("ZZ").run()
    app.button(key="predict").click().run()
    assert PROBABILITY in metrics(app)
    notes = [i.value for i in app.info]
    assert any("'ZZ' was not in the training data" in n for n in notes), notes
    assert any("no online features for carrier=ZZ" in n for n in notes), notes


def test_an_invalid_field_is_refused_naming_it(app: AppTest) -> None:
    app.radio(key="source").set_value("Type one in").run()
    app.text_input(key="dest").input("").run()
    app.button(key="predict").click().run()
    assert PROBABILITY not in metrics(app)
    (error,) = [e.value for e in app.error]
    assert error.startswith("the service refused the flight: dest: required")


def test_a_stopped_service_is_named_with_what_to_run(app: AppTest) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    app.sidebar.text_input(key="endpoint").input(closed).run()
    app.button(key="predict").click().run()
    (error,) = [e.value for e in app.error]
    assert error.startswith(f"cannot reach {closed}/predict")
    assert error.endswith("start the service with `onering serve`.")


def test_the_latest_drift_report_is_summarized_with_a_chart(
    app: AppTest, report: DriftSummary
) -> None:
    shown = metrics(app)
    assert shown["Latest report"] == "2013-02"
    assert shown["Drifted columns"] == f"{len(report.drifted_columns)} of {len(report.columns)}"
    assert shown["Dataset drift"] == ("yes" if report.dataset_drift else "no")
    (chart,) = app.get("vega_lite_chart")  # one month: no trend line yet
    assert '"title": "drift score"' in chart.proto.spec  # type: ignore[attr-defined]
    bars = pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all()  # type: ignore[attr-defined]
    assert bars.num_rows == len(report.columns)
    assert sorted(bars["score"].to_pylist()) == sorted(c.score for c in report.columns)
    (table,) = app.dataframe
    frame = table.value
    assert set(frame["column"]) == {c.column for c in report.columns}
    assert frame["drifted"].sum() == len(report.drifted_columns)
    assert list(frame["drifted"]) == sorted(frame["drifted"], reverse=True)  # drifted first


def test_onering_app_serves_streamlit_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    assert command(port)[-8:-4] == ["--server.address", "127.0.0.1", "--server.port", str(port)]
    log = (tmp_path / "app.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "onering_assets.cli", "app", "--port", str(port)],
        env={**os.environ, "ONERING_STATE_DIR": str(tmp_path / "state")},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as r:
                    assert r.read() == b"ok"
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "app.log").read_text()
                assert time.monotonic() < deadline, "streamlit did not answer"
                time.sleep(0.25)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "app.log").read_text()
    assert f"Streamlit app on http://127.0.0.1:{port}, asking http://127.0.0.1:3001" in text
