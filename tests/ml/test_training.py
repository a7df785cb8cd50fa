"""Training end to end on real components: Feast retrieval, Spark local, MLflow on SQLite.

January 2013 trains and February tests (``JAN_FEB``). Measured on this sample: test AUC
0.652, the baseline (the carrier's 28-day late rate) 0.617, ONNX vs Spark ~2e-7. The
default gate floor (0.66) is stated for the full year (measured 0.704), so these runs set
``auc_floor`` to 0.60: a floor for this two-month sample, not the production one.

The training set and model runs asserted on here are the session's ``champion``
(tests/ml/conftest.py), which serving, the app and drift also use; a test that plants rows
or registers another version does it on its own copy of the state.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from onering_assets.definitions import build_definitions
from onering_assets.ml import gate, inputs, registry, training_set
from onering_assets.ml.model_assets import MODEL, TRAINING_SET
from onering_assets.ml.training import load_job, onnx_probabilities
from onering_assets.resources import LakeResource
from onering_assets.resources.mlflow import mlflow_resource
from onering_assets.settings import Settings
from tests.ml.conftest import JAN_FEB, Champion, copy_state, failure_message, materialize

SAMPLE_AUC, SAMPLE_BASELINE = 0.652, 0.617
FEB_10 = date(2013, 2, 10)


FEB_10_STAMP = datetime(2013, 2, 10, 5, 0, tzinfo=UTC)  # 00:00 in New York
FEB_11_STAMP = datetime(2013, 2, 11, 5, 0, tzinfo=UTC)


def rows_of(frame: pd.DataFrame, **equal: object) -> pd.DataFrame:
    """The rows whose columns equal the given values."""
    mask = pd.Series(True, index=frame.index)
    for column, value in equal.items():
        mask &= frame[column] == value
    return pd.DataFrame(frame.loc[mask])


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def settings(champion: Champion) -> Settings:
    return champion.settings


@pytest.fixture(scope="module")
def defs(settings: Settings) -> dg.Definitions:
    return build_definitions(settings)


@pytest.fixture(scope="module")
def lake(settings: Settings) -> LakeResource:
    return LakeResource(url=settings.lake_dir.as_uri())


@pytest.fixture(scope="module")
def built(champion: Champion, lake: LakeResource) -> pd.DataFrame:
    """The shared ``ml/training_set`` run: it succeeded, its checks passed; what it wrote."""
    result = champion.training_run
    assert result.success, failure_message(result)
    assert all(e.passed for e in result.get_asset_check_evaluations())
    return training_set.read(lake)


@pytest.fixture(scope="module")
def champion_run(champion: Champion) -> dg.ExecuteInProcessResult:
    """The shared ``ml/flight_late_arrival`` run with ``JAN_FEB``."""
    return champion.model_run


def test_training_set_holds_every_labelled_flight_with_point_in_time_features(
    built: pd.DataFrame, lake: LakeResource
) -> None:
    assert len(built) == 26398 + 23611  # flights of Jan and Feb with an arrival delay
    assert built[inputs.LABEL].mean() == pytest.approx(0.2284, abs=1e-3)
    assert set(inputs.model_columns()) <= set(built.columns)
    # A flight's carrier stats are the row stamped at 00:00 New York of its own day.
    flight = rows_of(built, carrier="UA", flight_date=FEB_10)
    stats = lake.read("features", "carrier_stats").to_pandas()
    day = rows_of(stats, carrier="UA", event_timestamp=FEB_10_STAMP)
    assert len(day) == 1 and len(flight) > 10
    assert set(flight["carrier_late_rate_28d"]) == {day["carrier_late_rate_28d"].iloc[0]}
    departures = pd.Series(flight["sched_dep_at"]).dt.tz_convert("UTC")
    expected = (departures - pd.Timedelta(hours=2)).to_numpy()
    assert (pd.Series(flight[inputs.EVENT_TIMESTAMP]).to_numpy() == expected).all()


def test_a_leaked_future_value_fails_no_future_features(
    built: pd.DataFrame, lake: LakeResource
) -> None:
    stats = lake.read("features", "carrier_stats").to_pandas()
    views = [training_set.ViewSpec("carrier_stats", ("carrier",), inputs.feature_columns()[:3])]
    leaky = built.copy()
    morning = rows_of(leaky, carrier="UA", flight_date=FEB_10).index[0]
    tomorrow = rows_of(stats, carrier="UA", event_timestamp=FEB_11_STAMP).iloc[0]
    for column in views[0].features:
        leaky.loc[morning, column] = tomorrow[column]
    outcome = training_set.future_features(leaky, views, {"carrier_stats": stats})
    assert not outcome.passed and outcome.failing == 1
    assert outcome.metadata["future"] == 1 and outcome.metadata["unexplained"] == 0
    assert outcome.sample[0]["carrier"] == "UA" and outcome.sample[0]["view"] == "carrier_stats"
    assert outcome.sample[0]["values_first_stamped"].startswith("2013-02-11 05:00")
    leaky.loc[morning, "carrier_late_rate_28d"] = 0.123456789  # in no offline row
    outcome = training_set.future_features(leaky, views, {"carrier_stats": stats})
    assert outcome.metadata["unexplained"] == 1 and outcome.metadata["future"] == 0
    assert training_set.future_features(built, views, {"carrier_stats": stats}).passed


def test_checks_alone_audit_the_published_training_set(
    built: pd.DataFrame, defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    result = materialize(defs, instance, {TRAINING_SET}, checks_only=True)
    checks = check_results(result)
    assert set(checks) == {training_set.NO_FUTURE_FEATURES, training_set.LABEL_COVERAGE}
    assert all(c.passed for c in checks.values())
    assert not result.asset_materializations_for_node("ml__training_set")


def test_thin_feature_coverage_or_one_class_fails_label_coverage(built: pd.DataFrame) -> None:
    thin = built.copy()
    thin.loc[thin.index[: len(thin) // 5], "weather_temp"] = np.nan
    outcome = training_set.coverage(thin)
    assert not outcome.passed and "weather_temp present for 80.0" in outcome.summary
    assert outcome.metadata["rows_by_month"] == {"2013-01": 26398, "2013-02": 23611}
    one_class = pd.DataFrame(built.loc[built[inputs.LABEL] == 1])
    outcome = training_set.coverage(one_class)
    assert not outcome.passed and "with 1 class(es)" in outcome.summary


def test_a_planted_later_row_is_not_used_for_earlier_flights(
    ml_base_state: Path, tmp_path_factory: pytest.TempPathFactory, instance: dg.DagsterInstance
) -> None:
    settings = Settings(
        profile="local", state_dir=copy_state(ml_base_state, tmp_path_factory, "planted")
    )
    lake = LakeResource(url=settings.lake_dir.as_uri())
    stats = lake.read("features", "carrier_stats")
    planted_at = datetime(2013, 2, 10, 16, 0, tzinfo=UTC)  # 11:00 in New York
    row = stats.slice(0, 1).to_pylist()[0] | {
        "carrier": "UA",
        "event_timestamp": planted_at,
        "carrier_late_rate_28d": 0.987654,
    }
    lake.write(
        "features",
        "carrier_stats",
        None,
        pa.concat_tables([stats, pa.Table.from_pylist([row], stats.schema)]),
    )
    defs = build_definitions(settings)
    result = materialize(defs, instance, {TRAINING_SET})
    assert result.success, failure_message(result)
    assert check_results(result)[training_set.NO_FUTURE_FEATURES].passed
    frame = training_set.read(lake)
    ua = rows_of(frame, carrier="UA", flight_date=FEB_10)
    early = ua[inputs.EVENT_TIMESTAMP] < planted_at
    before = pd.Series(ua.loc[early, "carrier_late_rate_28d"])
    after = pd.Series(ua.loc[~early, "carrier_late_rate_28d"])
    assert len(before) > 5 and len(after) > 5
    assert 0.987654 not in set(before)
    assert set(after) == {0.987654}


def test_model_is_trained_registered_and_promoted(
    champion_run: dg.ExecuteInProcessResult, settings: Settings
) -> None:
    assert champion_run.success, failure_message(champion_run)
    checks = check_results(champion_run)
    assert set(checks) == {d.name for d in gate.gate_decls()}
    assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items()}
    entries = champion_run.asset_materializations_for_node("ml__flight_late_arrival")[0].metadata
    meta = {k: v.value for k, v in entries.items()}
    assert meta["version"] == "1" and meta["champion"] == "1"
    assert meta["test_auc"] == pytest.approx(SAMPLE_AUC, abs=0.01)
    assert meta["baseline_auc"] == pytest.approx(SAMPLE_BASELINE, abs=0.01)
    assert float(meta["onnx_max_abs_diff"]) < 1e-5  # type: ignore[arg-type]
    assert meta["train_rows"] == 26398 and meta["test_rows"] == 23611
    mlflow_res = mlflow_resource(settings)
    assert registry.champion_version(mlflow_res) == "1"


def test_version_run_holds_both_forms_serving_json_and_feature_refs(
    champion_run: dg.ExecuteInProcessResult, settings: Settings
) -> None:
    from mlflow import artifacts, models

    mlflow_res = mlflow_resource(settings)
    client = mlflow_res.client()
    version = client.get_model_version_by_alias(inputs.MODEL_NAME, "champion")
    run = client.get_run(str(version.run_id))
    assert run.data.params["train_months"] == "1" and run.data.params["test_months"] == "2"
    assert run.data.params["gate_auc_floor"] == "0.6"
    assert run.data.tags[registry.GATE_TAG] == "passed"
    serving = artifacts.load_dict(f"runs:/{run.info.run_id}/{registry.SERVING_ARTIFACT}")
    refs = [r.ref for r in inputs.feature_refs()]
    assert serving["model_name"] == inputs.MODEL_NAME and serving["version"] == "1"
    assert serving["feature_refs"] == refs and len(refs) == 12
    assert serving["onnx_inputs"] == inputs.onnx_inputs()
    assert serving["probability_output"] == "probability" and serving["tolerance"] == 1e-5
    assert set(serving["fill_values"]) == set(inputs.numeric_columns())
    feast_refs = artifacts.load_dict(f"runs:/{run.info.run_id}/{registry.FEATURE_REFS_ARTIFACT}")
    assert feast_refs == {"feature_refs": refs}
    info = models.get_model_info(f"runs:/{run.info.run_id}/{registry.SPARK_ARTIFACT}")
    assert info.signature is not None and info.saved_input_example_info is not None
    assert info.signature.inputs.input_names() == list(inputs.model_columns())
    assert registry.version_tags(mlflow_res, "1")[registry.GATE_TAG] == "passed"


def test_registered_onnx_form_reproduces_the_registered_spark_model(
    champion_run: dg.ExecuteInProcessResult,
    settings: Settings,
    built: pd.DataFrame,
    spark: SparkSession,
) -> None:
    """The whole February test set plus flights with codes the model never saw."""
    from mlflow import spark as mlflow_spark

    champion = registry.load_champion(mlflow_resource(settings))
    assert champion is not None
    feb = pd.DataFrame(built.loc[built["sched_dep_at"].dt.month == 2])
    unseen = feb.head(3).assign(carrier=["ZZ", "UA", "ZZ"], dest=["LAX", "XYZ", "QQQ"])
    rows = pd.concat([feb, unseen], ignore_index=True)
    frame = inputs.model_frame(rows, champion.serving["fill_values"])
    model = mlflow_spark.load_model(f"runs:/{champion.run_id}/{registry.SPARK_ARTIFACT}")
    spark_probs = load_job().probabilities(spark, model, frame)
    onnx_probs = onnx_probabilities(champion.onnx, frame, champion.serving["onnx_inputs"])
    assert len(spark_probs) == len(feb) + 3
    assert np.abs(spark_probs - onnx_probs).max() <= champion.serving["tolerance"]
    assert ((onnx_probs > 0) & (onnx_probs < 1)).all()


def test_gate_refuses_a_worse_model_and_the_alias_stays(
    champion_run: dg.ExecuteInProcessResult,
    built: pd.DataFrame,
    settings: Settings,
    instance: dg.DagsterInstance,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """January's labels shuffled: the model learns nothing, so the gate must refuse it.

    On a copy of the champion's state (its registry and lake), so the shared one keeps one
    version.
    """
    assert champion_run.success
    own = Settings(
        profile="local", state_dir=copy_state(settings.state_dir, tmp_path_factory, "refused")
    )
    shuffled = built.copy()
    january = shuffled.sched_dep_at.dt.month == 1
    rng = np.random.default_rng(7)
    shuffled.loc[january, inputs.LABEL] = rng.permutation(
        shuffled.loc[january, inputs.LABEL].to_numpy()
    )
    training_set.write(LakeResource(url=own.lake_dir.as_uri()), shuffled)
    result = materialize(build_definitions(own), instance, {MODEL}, JAN_FEB)
    assert not result.success
    checks = check_results(result)
    assert checks[gate.ONNX_PARITY].passed
    assert not checks[gate.AUC_FLOOR].passed
    assert not checks[gate.BEATS_BASELINE].passed
    versus = checks[gate.NOT_WORSE_THAN_CHAMPION]
    assert not versus.passed and versus.metadata["champion_rescored"].value is True
    assert versus.metadata["champion_auc"].value == pytest.approx(SAMPLE_AUC, abs=0.01)
    assert float(versus.metadata["test_auc"].value) < 0.56  # type: ignore[arg-type]
    message = failure_message(result)
    assert "version 2 is registered but refused as champion" in message
    assert "the champion stays version 1" in message and "auc_floor" in message
    mlflow_res = mlflow_resource(own)
    assert registry.champion_version(mlflow_res) == "1"
    tags = registry.version_tags(mlflow_res, "2")
    assert (
        tags[registry.GATE_TAG] == "refused" and "beats_baseline" in tags[registry.GATE_REASONS_TAG]
    )
    # The refused version's run was logged under the copy, not the shared state.
    client = mlflow_res.client()
    run = client.get_run(str(client.get_model_version(inputs.MODEL_NAME, "2").run_id))
    assert str(run.info.artifact_uri).startswith(own.state_dir.resolve().as_uri())
    shared = mlflow_resource(settings).client()
    assert len(shared.search_model_versions(f"name='{inputs.MODEL_NAME}'")) == 1


def test_checks_alone_audit_the_champion_without_training(
    champion_run: dg.ExecuteInProcessResult,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
) -> None:
    """A planted floor above the champion's AUC fails its audit; nothing moves."""
    mlflow_res = mlflow_resource(settings)
    versions = len(mlflow_res.client().search_model_versions(f"name='{inputs.MODEL_NAME}'"))
    result = materialize(defs, instance, {MODEL}, {**JAN_FEB, "auc_floor": 0.99}, checks_only=True)
    checks = check_results(result)
    assert not checks[gate.AUC_FLOOR].passed and "below the floor 0.99" in str(
        checks[gate.AUC_FLOOR].metadata["summary"].value
    )
    assert checks[gate.ONNX_PARITY].passed and checks[gate.BEATS_BASELINE].passed
    assert checks[gate.NOT_WORSE_THAN_CHAMPION].passed
    assert not result.asset_materializations_for_node("ml__flight_late_arrival")
    assert len(mlflow_res.client().search_model_versions(f"name='{inputs.MODEL_NAME}'")) == versions
    assert registry.champion_version(mlflow_res) == "1"


def test_model_without_a_training_set_fails_clearly(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    settings = Settings(profile="local", state_dir=tmp_path / ".onering")
    result = materialize(build_definitions(settings), instance, {MODEL}, JAN_FEB)
    assert not result.success
    assert "no training set yet; materialize ml/training_set first" in failure_message(result)
