"""A model step on unchanged inputs reuses its verdict instead of training again.

Real components: the ``ml/training_set`` asset on January–February 2013, then
``ml/flight_late_arrival`` on Spark ``local[*]`` with MLflow on SQLite. To keep each fit
short the published training set is thinned to every ``EVERY``-th flight (~6,000), and the
gate's floor is one for that sample (``CONFIG``), not the production one.

A step that must not train runs with a spark resource on a master this process does not
run (``NO_SPARK``): opening a session there raises, so its success shows Spark was never
asked for.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from onering_assets.definitions import build_definitions
from onering_assets.ml import gate, inputs, promote, registry, training_set
from onering_assets.ml.model_assets import MODEL, TRAINING_SET
from onering_assets.ml.training import TrainSpec
from onering_assets.resources import LakeResource
from onering_assets.resources.mlflow import MlflowResource, mlflow_resource
from onering_assets.resources.spark import SparkResource
from onering_assets.settings import Settings
from tests.ml.conftest import copy_state

EVERY = 8
CONFIG: dict[str, Any] = {
    "train_months": "1",
    "test_months": "2",
    "auc_floor": 0.55,
    "max_iter": 10,
}
NO_SPARK = SparkResource(master="spark://127.0.0.1:9")
SAME = "was trained on this exact training set, config and code"
FAST_S = 5.0


@dataclass(frozen=True)
class State:
    """A private state with the thinned training set and its first champion."""

    settings: Settings
    defs: dg.Definitions
    no_spark: dg.Definitions
    frame: pd.DataFrame
    champion: str

    @property
    def mlflow(self) -> MlflowResource:
        return mlflow_resource(self.settings)


def run_model(
    defs: dg.Definitions, instance: dg.DagsterInstance, config: dict[str, Any]
) -> tuple[dg.ExecuteInProcessResult, float]:
    """Materialize the model (with its gate checks); return the result and its wall time."""
    graph = defs.resolve_asset_graph()
    checks = {c for c in graph.asset_check_keys if c.asset_key == MODEL}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={MODEL}, asset_check_selection=checks
    )
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        run_config={"ops": {"ml__flight_late_arrival": {"config": config}}},
        raise_on_error=False,
    )
    return result, time.perf_counter() - started


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node("ml__flight_late_arrival")
    return {k: v.value for k, v in materialization.metadata.items()}


def failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return "\n".join(str(e.event_specific_data.error.message) for e in failures)  # type: ignore[union-attr]


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The metadata of the step's ``dg.Failure``."""
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = event.event_specific_data.user_failure_data  # type: ignore[union-attr]
    assert data is not None, "the step did not fail with a dg.Failure"
    return {k: v.value for k, v in data.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def versions(mlflow_res: MlflowResource) -> list[str]:
    found = mlflow_res.client().search_model_versions(f"name = '{inputs.MODEL_NAME}'")
    return sorted((str(v.version) for v in found), key=int)


def run_tags(mlflow_res: MlflowResource, version: str) -> dict[str, str]:
    return registry.logged_version(mlflow_res, version).tags


def open_state(state_dir: Path) -> tuple[Settings, dg.Definitions, dg.Definitions]:
    settings = Settings(profile="local", state_dir=state_dir)
    no_spark = build_definitions(settings, resources={"spark": NO_SPARK})
    return settings, build_definitions(settings), no_spark


@pytest.fixture(scope="module")
def state(
    ml_base_state: Path,
    tmp_path_factory: pytest.TempPathFactory,
    instance: dg.DagsterInstance,
    spark: SparkSession,  # running: NO_SPARK's session() then raises instead of connecting
) -> State:
    settings, defs, no_spark = open_state(copy_state(ml_base_state, tmp_path_factory, "reuse"))
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={TRAINING_SET})
    built = job.execute_in_process(instance=instance, raise_on_error=False)
    assert built.success, failure(built)
    lake = LakeResource(url=settings.lake_dir.as_uri())
    full = training_set.read(lake)
    thin = pd.DataFrame(full.iloc[::EVERY]).reset_index(drop=True)
    training_set.write(lake, thin)
    first, _ = run_model(defs, instance, CONFIG)
    assert first.success, failure(first)
    champion = registry.champion_version(mlflow_resource(settings))
    assert champion is not None and metadata(first)["version"] == champion
    return State(settings, defs, no_spark, training_set.read(lake), champion)


def test_unchanged_inputs_reuse_the_champion_without_spark(
    state: State, instance: dg.DagsterInstance
) -> None:
    champion = registry.champion_version(state.mlflow)
    assert champion is not None
    before = versions(state.mlflow)
    result, seconds = run_model(state.no_spark, instance, CONFIG)
    assert result.success, failure(result)
    assert seconds < FAST_S
    assert versions(state.mlflow) == before
    assert registry.champion_version(state.mlflow) == champion
    meta = metadata(result)
    assert meta["reused"] == f"the champion version {champion} {SAME}"
    assert meta["version"] == meta["champion"] == champion
    tags = run_tags(state.mlflow, champion)
    assert meta["fingerprint"] == tags[registry.FINGERPRINT_TAG]
    assert meta["test_auc"] == registry.logged_version(state.mlflow, champion).metrics["test_auc"]
    found = checks(result)
    assert set(found) == {d.name for d in gate.gate_decls()}
    assert all(c.passed for c in found.values())
    assert found[gate.NOT_WORSE_THAN_CHAMPION].metadata["summary"].value == (
        f"version {champion} is the champion"
    )


def test_every_trained_run_carries_its_fingerprint(state: State) -> None:
    tags = run_tags(state.mlflow, "1")
    spec = TrainSpec((1,), (2,), {"maxIter": 10, "regParam": 0.0, "elasticNetParam": 0.0})
    expected = promote.fingerprint(state.frame, spec, gate.GateConfig(auc_floor=0.55))
    assert tags[registry.FINGERPRINT_TAG] == expected.digest
    assert expected.changed_since(tags) == []
    assert tags[registry.GATE_CHAMPION_TAG] == "none"  # the first version had no champion


def test_what_determines_the_model_changes_its_fingerprint(state: State) -> None:
    """Plain functions: which part moves for a flipped label, other months, another floor."""
    spec = TrainSpec((1,), (2,))
    fp = promote.fingerprint(state.frame, spec)
    assert promote.fingerprint(state.frame.copy(), spec) == fp
    flipped = state.frame.copy()
    flipped.loc[100, inputs.LABEL] = 1 - flipped.loc[100, inputs.LABEL]
    assert promote.fingerprint(flipped, spec).changed_since(fp.tags()) == ["training_set"]
    other = promote.fingerprint(state.frame, TrainSpec((1,), (3,)))
    assert other.changed_since(fp.tags()) == ["config"]
    floor = promote.fingerprint(state.frame, spec, gate.GateConfig(auc_floor=0.5))
    assert floor.changed_since(fp.tags()) == ["config"]
    assert fp.changed_since({}) == list(fp.parts)


@dataclass(frozen=True)
class Shuffled:
    """Three model runs on January's labels shuffled (the published set restored after)."""

    champion: str
    trained: dg.ExecuteInProcessResult
    repeated: dg.ExecuteInProcessResult
    repeated_seconds: float
    versions_before_repeat: list[str]
    versions_after_repeat: list[str]
    forced: dg.ExecuteInProcessResult
    versions_after_force: list[str]


@pytest.fixture(scope="module")
def shuffled(state: State, instance: dg.DagsterInstance) -> Shuffled:
    """Train on shuffled labels (refused), run again without Spark, then force it."""
    lake = LakeResource(url=state.settings.lake_dir.as_uri())
    champion = registry.champion_version(state.mlflow)
    assert champion is not None
    frame = state.frame.copy()
    january = frame.sched_dep_at.dt.month == 1
    labels = frame.loc[january, inputs.LABEL].to_numpy()
    frame.loc[january, inputs.LABEL] = np.random.default_rng(7).permutation(labels)
    training_set.write(lake, frame)
    try:
        trained, _ = run_model(state.defs, instance, CONFIG)
        before = versions(state.mlflow)
        repeated, seconds = run_model(state.no_spark, instance, CONFIG)
        after = versions(state.mlflow)
        forced, _ = run_model(state.defs, instance, {**CONFIG, "force": True})
    finally:
        training_set.write(lake, state.frame)
    return Shuffled(
        champion, trained, repeated, seconds, before, after, forced, versions(state.mlflow)
    )


def test_a_changed_training_set_trains_a_new_version(state: State, shuffled: Shuffled) -> None:
    """Shuffled labels: a new fingerprint, so trained; it learns nothing, so it is refused."""
    result = shuffled.trained
    assert not result.success
    version = shuffled.versions_before_repeat[-1]
    assert f"version {version} is registered but refused as champion (" in failure(result)
    assert failure_metadata(result)["trained_because"] == (
        f"the champion version {shuffled.champion} was trained on another training_set"
    )
    tags = run_tags(state.mlflow, version)
    assert tags[registry.GATE_TAG] == "refused"
    fp = promote.Fingerprint(
        tags[registry.FINGERPRINT_TAG], json.loads(tags[registry.FINGERPRINT_PARTS_TAG])
    )
    assert fp.changed_since(run_tags(state.mlflow, shuffled.champion)) == ["training_set"]
    gated = json.loads(tags[registry.GATE_CHAMPION_TAG])
    assert gated["version"] == shuffled.champion and gated["rescored"] is True
    assert registry.champion_version(state.mlflow) == shuffled.champion


def test_a_refused_fingerprint_fails_fast_naming_the_refused_version(
    state: State, shuffled: Shuffled
) -> None:
    """The same shuffled set again: no new version, no Spark, the same verdict and reasons."""
    refused = shuffled.versions_before_repeat[-1]
    again = shuffled.repeated
    assert not again.success
    assert shuffled.repeated_seconds < FAST_S
    assert shuffled.versions_after_repeat == shuffled.versions_before_repeat
    message = failure(again)
    assert (
        f"version {refused} is registered but refused as champion; it was not trained again: "
        f"version {refused} {SAME} and refused as champion; the data did not change, so the "
        "verdict would not (set the run config's force to train anyway); the champion stays "
        f"version {shuffled.champion}." in message
    )
    assert "auc_floor: test AUC" in message and "not_worse_than_champion: AUC" in message
    first, repeated = checks(shuffled.trained), checks(again)
    assert {n: c.passed for n, c in repeated.items()} == {n: c.passed for n, c in first.items()}
    assert not repeated[gate.AUC_FLOOR].passed and not repeated[gate.BEATS_BASELINE].passed
    for name in (gate.AUC_FLOOR, gate.BEATS_BASELINE, gate.NOT_WORSE_THAN_CHAMPION):
        summary = repeated[name].metadata["summary"].value
        assert summary == first[name].metadata["summary"].value
    assert registry.champion_version(state.mlflow) == shuffled.champion


def test_force_trains_even_when_the_verdict_is_known(state: State, shuffled: Shuffled) -> None:
    result = shuffled.forced
    assert not result.success  # the same shuffled labels: refused again, after training
    forced = shuffled.versions_after_force[-1]
    assert shuffled.versions_after_force == [*shuffled.versions_after_repeat, forced]
    assert f"version {forced} is registered but refused as champion (" in failure(result)
    assert failure_metadata(result)["trained_because"] == "forced by the run config (force: true)"
    tags = run_tags(state.mlflow, forced)
    refused = run_tags(state.mlflow, shuffled.versions_before_repeat[-1])
    assert tags[registry.FINGERPRINT_TAG] == refused[registry.FINGERPRINT_TAG]
    assert registry.champion_version(state.mlflow) == shuffled.champion
