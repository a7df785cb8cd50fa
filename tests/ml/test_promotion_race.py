"""Promotion is a compare-and-set under the lake's champion lock (review M1).

A real MLflow registry (SQLite) and the real file locks; no Spark: the versions are
registered straight from runs, as ``registry.register`` does after training.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from airflow_bridge.processes import free_port
from onering_assets.errors import StoreBusyError
from onering_assets.ml import inputs, registry
from onering_assets.resources.locks import FileLocks
from onering_assets.resources.mlflow import MlflowResource, local_tracking_uri


@pytest.fixture
def mlflow_res(tmp_path: Path) -> MlflowResource:
    return MlflowResource(
        tracking_uri=local_tracking_uri(tmp_path), artifact_dir=str(tmp_path / "artifacts")
    )


def new_version(mlflow_res: MlflowResource) -> tuple[str, str]:
    """A run and a registered version of it (the model's files are not needed here)."""
    client = mlflow_res.client()
    run = client.create_run(mlflow_res.experiment_id(client))
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{inputs.MODEL_NAME}'"):
        client.create_registered_model(inputs.MODEL_NAME)
    version = client.create_model_version(
        inputs.MODEL_NAME, f"runs:/{run.info.run_id}/model", run.info.run_id
    )
    return str(version.version), run.info.run_id


def test_a_passed_version_is_promoted_when_the_champion_did_not_move(
    mlflow_res: MlflowResource, tmp_path: Path
) -> None:
    first, run = new_version(mlflow_res)
    locks = FileLocks(tmp_path / "locks-dir")
    (tmp_path / "locks-dir").mkdir()
    assert registry.settle(mlflow_res, first, run, [], None, locks) == ""
    assert registry.champion_version(mlflow_res) == first
    second, run2 = new_version(mlflow_res)
    assert registry.settle(mlflow_res, second, run2, [], first, locks) == ""
    assert registry.champion_version(mlflow_res) == second


def test_a_version_gated_against_a_moved_champion_is_refused(
    mlflow_res: MlflowResource, tmp_path: Path
) -> None:
    first, run1 = new_version(mlflow_res)
    registry.settle(mlflow_res, first, run1, [], None, None)
    second, run2 = new_version(mlflow_res)
    third, run3 = new_version(mlflow_res)
    registry.settle(mlflow_res, third, run3, [], first, None)  # promoted meanwhile

    moved = registry.settle(mlflow_res, second, run2, [], first, None)

    assert moved.startswith(f"the champion moved to version {third} while this model was gated")
    assert registry.champion_version(mlflow_res) == third
    tags = registry.version_tags(mlflow_res, second)
    assert tags[registry.GATE_TAG] == "refused" and moved in tags[registry.GATE_REASONS_TAG]
    assert registry.logged_version(mlflow_res, second).verdict == "refused"  # the run's tag


def test_two_runs_gated_against_one_champion_cannot_both_be_promoted(
    mlflow_res: MlflowResource, tmp_path: Path
) -> None:
    """Both passed against version 1 and settle at once: one wins, the other is refused."""
    first, run1 = new_version(mlflow_res)
    registry.settle(mlflow_res, first, run1, [], None, None)
    contenders = [new_version(mlflow_res) for _ in range(2)]
    folder = tmp_path / "locks"
    folder.mkdir()
    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def settle(version: str, run: str) -> None:
        start.wait()
        results[version] = registry.settle(mlflow_res, version, run, [], first, FileLocks(folder))

    threads = [threading.Thread(target=settle, args=c) for c in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    promoted = [v for v, moved in results.items() if not moved]
    assert len(results) == 2 and len(promoted) == 1, results
    assert registry.champion_version(mlflow_res) == promoted[0]


def test_a_refused_version_never_moves_the_alias(mlflow_res: MlflowResource) -> None:
    first, run1 = new_version(mlflow_res)
    registry.settle(mlflow_res, first, run1, [], None, None)
    second, run2 = new_version(mlflow_res)
    assert registry.settle(mlflow_res, second, run2, ["auc_floor: too low"], first, None) == ""
    assert registry.champion_version(mlflow_res) == first
    assert registry.version_tags(mlflow_res, second)[registry.GATE_TAG] == "refused"


def test_a_champion_whose_serving_form_is_unreadable_is_incomparable_not_fatal(
    mlflow_res: MlflowResource,
) -> None:
    """Review m6: training goes on; the gate says it cannot compare (and refuses by default)."""
    from onering_assets.ml import gate, promote

    first, run1 = new_version(mlflow_res)  # no serving.json, no ONNX form
    registry.settle(mlflow_res, first, run1, [], None, None)

    score = promote._score_champion(mlflow_res, trained=None)  # type: ignore[arg-type]

    assert score is not None and not score.rescored and score.version == first
    assert "its serving form cannot be read" in score.why
    metrics = {"test_auc": 0.7, "baseline_auc": 0.6, "onnx_max_abs_diff": 0.0, "test_rows": 9.0}
    versus = {o.name: o for o in gate.evaluate(metrics, score)}[gate.NOT_WORSE_THAN_CHAMPION]
    assert not versus.passed and "cannot compare with champion version" in versus.summary


def test_a_registry_that_does_not_answer_is_never_taken_for_no_champion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review: a failed alias read meant "no champion", so a run could promote over one."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = MlflowResource(tracking_uri=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(registry.RegistryError, match="cannot read flight_late_arrival@champion"):
        registry.champion_version(down)
    with pytest.raises(registry.RegistryError):
        registry.settle(down, "2", "run", [], None, None)


def test_a_promotion_that_cannot_finish_leaves_the_version_refused_not_passed(
    mlflow_res: MlflowResource, tmp_path: Path
) -> None:
    """The champion lock is held elsewhere: nothing moves, and nothing looks promotable."""
    first, run1 = new_version(mlflow_res)
    registry.settle(mlflow_res, first, run1, [], None, None)
    second, run2 = new_version(mlflow_res)
    folder = tmp_path / "locks"
    folder.mkdir()
    busy = FileLocks(folder, timeout_s=0.3)
    with (
        FileLocks(folder).hold(registry.CHAMPION_LOCK, what="another promotion"),
        pytest.raises(StoreBusyError),
    ):
        registry.settle(mlflow_res, second, run2, [], first, busy)
    assert registry.champion_version(mlflow_res) == first
    assert registry.version_tags(mlflow_res, second)[registry.GATE_TAG] == "refused"
    logged = registry.logged_version(mlflow_res, second)
    assert logged.verdict == "refused" and registry.GATE_MOVED_TAG in logged.tags


def test_a_refusal_because_the_champion_moved_is_never_replayed(
    mlflow_res: MlflowResource,
) -> None:
    """Same inputs, champion back to the one it was gated against: train again, not refuse."""
    from onering_assets.ml import promote

    first, run1 = new_version(mlflow_res)
    registry.settle(mlflow_res, first, run1, [], None, None)
    digest = "ab" * 32
    moved, run2 = new_version(mlflow_res)
    client = mlflow_res.client()
    client.set_tag(run2, registry.FINGERPRINT_TAG, digest)
    client.set_tag(run2, registry.GATE_CHAMPION_TAG, json.dumps({"version": first}))
    third, run3 = new_version(mlflow_res)
    registry.settle(mlflow_res, third, run3, [], first, None)  # promoted meanwhile
    assert registry.settle(mlflow_res, moved, run2, [], first, None)  # refused: it moved
    registry.promote(mlflow_res, first)  # moved back by hand

    decision = promote.decide(mlflow_res, promote.Fingerprint(digest, {}))

    assert decision.prior is None, decision.why
