"""What the service serves follows the alias, and only a version the gate passed (review M3).

On a copy of the session's champion state: the real registry (MLflow on SQLite), the real
predictor (ONNX + the Feast online store). A second version is registered from the
champion's own run (same artifacts), as an operator might do by hand.
"""

from __future__ import annotations

import pytest

from onering_assets.errors import ConfigError
from onering_assets.ml import inputs, registry
from onering_assets.ml.serving_app import Served, open_predictor, reload_interval
from onering_assets.ml.serving_model import load_champion, registry_for
from onering_assets.settings import Settings
from tests.ml.conftest import Champion, copy_state

FLIGHT = {"carrier": "UA", "origin": "EWR", "dest": "ORD", "sched_dep_at": "2013-02-25T08:00"}


@pytest.fixture(scope="module")
def settings(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = copy_state(champion.settings.state_dir, tmp_path_factory, "reload")
    return Settings(profile="local", state_dir=state)


def another_version(settings: Settings, verdict: str | None) -> str:
    """A new version of the champion's run, tagged with ``verdict`` (None: untagged)."""
    mlflow_res = registry_for(settings)
    client = mlflow_res.client()
    current = client.get_model_version_by_alias(inputs.MODEL_NAME, registry.CHAMPION_ALIAS)
    created = client.create_model_version(inputs.MODEL_NAME, str(current.source), current.run_id)
    if verdict:
        client.set_model_version_tag(inputs.MODEL_NAME, created.version, registry.GATE_TAG, verdict)
    return str(created.version)


def move_alias(settings: Settings, version: str) -> None:
    registry.promote(registry_for(settings), version)


def test_a_moved_alias_is_served_on_the_next_check(settings: Settings) -> None:
    served = Served(settings, open_predictor(settings))
    first = served.predictor.version
    assert served.refresh() == ""  # nothing moved
    second = another_version(settings, "passed")
    move_alias(settings, second)
    try:
        assert served.refresh() == f"now serving version {second} (the alias moved)"
        assert served.predictor.predict_one(FLIGHT)["model_version"] == second
    finally:
        move_alias(settings, first)
    assert served.refresh() == f"now serving version {first} (the alias moved)"


def test_a_version_the_gate_did_not_pass_is_never_served(settings: Settings) -> None:
    served = Served(settings, open_predictor(settings))
    first = served.predictor.version
    for verdict in ("refused", None):
        version = another_version(settings, verdict)
        move_alias(settings, version)
        try:
            said = served.refresh()
            assert said.startswith(f"keeping version {first}: "), said
            assert f"version {version} holds 'champion' but the gate did not pass it" in said
            assert served.refresh() == ""  # not opened again every interval
            assert served.predictor.predict_one(FLIGHT)["model_version"] == first
            with pytest.raises(ConfigError, match="the alias was moved by hand"):
                load_champion(registry_for(settings))
        finally:
            move_alias(settings, first)


@pytest.mark.parametrize(
    ("text", "seconds"), [(None, 30.0), ("0", 0.0), ("2.5", 2.5), ("-1", None), ("soon", None)]
)
def test_the_reload_interval_is_read_from_the_environment(
    text: str | None, seconds: float | None
) -> None:
    env = {} if text is None else {"ONERING_SERVE_RELOAD_S": text}
    if seconds is None:
        with pytest.raises(ConfigError, match="expected seconds ≥ 0"):
            reload_interval(env)
    else:
        assert reload_interval(env) == seconds
