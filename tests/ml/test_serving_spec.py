"""Serving without a server: serving.json parsing, the service definition, `onering serve`.

Nothing is trained here, and the only server started is one that cannot start
(tests/ml/test_serving.py serves a real champion).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import onering_assets.cli.serve  # noqa: F401  (registers `onering serve` on the app)
from airflow_bridge.processes import free_port
from onering_assets.cli.common import app
from onering_assets.errors import ConfigError, OneRingError
from onering_assets.ml import inputs
from onering_assets.ml.serving import RequestError
from onering_assets.ml.serving_app import SERVICE_CONFIG
from onering_assets.ml.serving_model import NoChampionError, ServingSpec, champion_version
from onering_assets.ml.serving_server import SERVICE_DIR, command, running, server_env
from onering_assets.resources.mlflow import mlflow_resource
from onering_assets.settings import Settings


def serving_json(**changes: Any) -> dict[str, Any]:
    """A serving.json as training writes it (registry.serving_spec), with ``changes``."""
    refs = [r.ref for r in inputs.feature_refs()]
    data = {
        "model_name": inputs.MODEL_NAME,
        "version": "7",
        "feature_refs": refs,
        "request_fields": list(inputs.DERIVED_COLUMNS),
        "onnx_inputs": inputs.onnx_inputs(),
        "probability_output": "probability",
        "fill_values": {c: 1.0 for c in inputs.numeric_columns()},
        "tolerance": 1e-5,
    }
    return {**data, **changes}


def test_serving_json_as_training_writes_it_parses() -> None:
    spec = ServingSpec.from_json(serving_json(), "7")
    assert spec.version == "7"
    assert spec.feature_names == inputs.feature_columns()
    assert [i.name for i in spec.onnx_inputs] == list(inputs.model_columns())
    assert spec.threshold == 0.5 and spec.tolerance == 1e-5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"onnx_inputs": None}, "lacks onnx_inputs"),
        ({"feature_refs": ["carrier_late_rate_28d"]}, "must be view:feature"),
        (
            {"onnx_inputs": [*inputs.onnx_inputs(), {"name": "tail_num", "type": "string"}]},
            "ONNX input 'tail_num' has no source",
        ),
        ({"onnx_inputs": [{"name": "carrier", "type": "float"}]}, "'carrier' is float"),
        ({"fill_values": {}}, "has no fill value"),
    ],
    ids=["no-inputs", "bare-ref", "unknown-input", "wrong-type", "no-fill"],
)
def test_an_unusable_serving_json_is_refused_saying_why(
    changes: dict[str, Any], message: str
) -> None:
    data = serving_json(**changes)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        ServingSpec.from_json(data, "7")


def test_request_errors_name_the_field_and_the_row() -> None:
    assert RequestError("carrier", "required").to_json() == {
        "error": "carrier: required",
        "field": "carrier",
    }
    assert RequestError("dest", "bad", row=4).to_json() == {
        "error": "flights[4].dest: bad",
        "field": "dest",
        "row": 4,
    }


def test_no_champion_says_what_to_materialize(tmp_path: Path) -> None:
    registry = mlflow_resource(Settings(profile="local", state_dir=tmp_path))
    with pytest.raises(NoChampionError, match=r"onering materialize --select 'group:ml'"):
        champion_version(registry)


def test_onering_serve_refuses_without_a_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONERING_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ONERING_PROFILE", "local")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1
    assert "No 'champion' version of flight_late_arrival" in result.output
    assert "onering materialize" in result.output


def test_a_service_that_cannot_start_stops_and_says_why(tmp_path: Path) -> None:
    """Not restarted forever by BentoML's process manager: it exits, its log says why."""
    settings = Settings(profile="local", state_dir=tmp_path / ".onering")
    log = tmp_path / "bento.log"
    with (
        pytest.raises(OneRingError, match=r"exited") as refused,
        running(settings, free_port(), log, timeout_s=120),
    ):
        pass
    assert "cannot serve: No 'champion' version of flight_late_arrival" in str(refused.value)
    assert log.read_text().count("cannot serve") == 1  # one try, not a restart loop


def test_the_server_binds_loopback_and_stays_local(tmp_path: Path) -> None:
    argv = command()
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "3001"
    assert argv[argv.index("serve") + 1] == str(SERVICE_DIR)
    env = server_env(Settings(profile="local", state_dir=tmp_path), base={})
    assert env["BENTOML_DO_NOT_TRACK"] == "true"  # no usage reports leave the machine
    assert env["BENTOML_HOME"] == str(tmp_path / "bentoml")
    assert env["ONERING_STATE_DIR"] == str(tmp_path)


def test_the_bento_service_declares_both_routes_with_the_measured_config() -> None:
    path = SERVICE_DIR / "service.py"
    spec = importlib.util.spec_from_file_location("onering_bento_service", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    service = module.FlightLateArrival
    assert service.name == "flight_late_arrival"
    assert {api.route for api in service.apis.values()} == {"/predict", "/predict_batch"}
    assert service.config["workers"] == 1
    assert service.config["logging"] == SERVICE_CONFIG["logging"]
    assert (
        (SERVICE_DIR / "bentofile.yaml").read_text().count('service: "service:FlightLateArrival"')
    )
