"""The MLflow side of ``flight_late_arrival``: log a run, register a version, promote it.

Each version's run holds (contract 3 of the ML issue):

- ``spark_model``: the fitted Spark pipeline (``mlflow.spark`` flavor) with its signature
  and an input example (five test rows of model inputs); this is what is registered;
- ``onnx_model``: the same pipeline as ONNX (``mlflow.onnx`` flavor), what serving runs;
- ``serving/serving.json``: what serving needs besides the ONNX bytes (below);
- ``feast/feature_refs.json``: the Feast references the features were retrieved with;
- params (split months, LogisticRegression params, gate thresholds), metrics (rows, AUCs,
  the ONNX difference, step times) and tags (the training set's address, the gate's verdict
  and the champion it was compared with, the fingerprint of what the model was trained on).

The alias ``champion`` is moved only by :func:`settle` (through :func:`promote`) when every
gate check passed and the champion is still the one the gate compared with.
:func:`trained_on` finds the versions whose run carries a fingerprint, so a step can reuse
a verdict instead of training again. MLflow is imported inside the functions (it takes
seconds to import).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.ml import inputs
from onering_assets.ml.training import PROBABILITY_OUTPUT, TrainedModel
from onering_assets.resources.locks import Locks
from onering_assets.resources.mlflow import MlflowResource

CHAMPION_ALIAS = "champion"
CHAMPION_LOCK = "ml:champion"
SPARK_ARTIFACT = "spark_model"
ONNX_ARTIFACT = "onnx_model"
SERVING_ARTIFACT = "serving/serving.json"
FEATURE_REFS_ARTIFACT = "feast/feature_refs.json"
GATE_TAG = "onering.gate"
# On a run refused only because the champion moved (or promotion was interrupted): the
# refusal says nothing about its data, so it is never replayed.
GATE_MOVED_TAG = "onering.gate_moved"
GATE_REASONS_TAG = "onering.gate_reasons"
# The champion the gate compared with (JSON: version, auc, rescored, why; or "none").
GATE_CHAMPION_TAG = "onering.gate_champion"
FINGERPRINT_TAG = "onering.fingerprint"
FINGERPRINT_PARTS_TAG = "onering.fingerprint_parts"
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Champion:
    """The version holding the alias: its run's metrics and params, ``serving.json``, ONNX."""

    version: str
    run_id: str
    metrics: dict[str, float]
    serving: dict[str, Any]
    onnx: bytes
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedVersion:
    """A registered version with its run's tags and metrics (nothing downloaded)."""

    version: str
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float]

    @property
    def verdict(self) -> str:
        """``passed`` or ``refused`` (the gate's tag on the run), or ``""`` if never gated."""
        return self.tags.get(GATE_TAG, "")


def _quiet() -> None:
    # Progress bars per artifact download, and a URL line per logged model, on stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_PRINT_MODEL_URLS_ON_CREATION", "false")


def _pins(*packages: str) -> list[str]:
    """Exact requirements for a logged model (skips MLflow's slow inference via ``uv export``)."""
    return [f"{p}=={importlib.metadata.version(p)}" for p in packages]


def serving_spec(
    trained: TrainedModel, version: str, tolerance: float, feature_refs: Sequence[str]
) -> dict[str, Any]:
    """``serving/serving.json``: how serving calls the ONNX form of ``version``."""
    return {
        "model_name": inputs.MODEL_NAME,
        "version": str(version),
        "feature_refs": list(feature_refs),
        "request_fields": list(inputs.DERIVED_COLUMNS),
        "onnx_inputs": trained.onnx_inputs,
        "probability_output": PROBABILITY_OUTPUT,
        "fill_values": trained.fill_values,
        "tolerance": tolerance,
    }


def log_run(
    mlflow_res: MlflowResource,
    trained: TrainedModel,
    *,
    feature_refs: Sequence[str],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str:
    """Log one training run (both model forms, params, metrics); return its run id."""
    import mlflow
    import pandas as pd
    from mlflow import onnx as mlflow_onnx
    from mlflow import spark as mlflow_spark
    from mlflow.models import infer_signature

    _quiet()
    client = mlflow_res.client()
    experiment = mlflow_res.experiment_id(client)
    example = pd.DataFrame(trained.test.loc[:, list(inputs.model_columns())]).head(EXAMPLE_ROWS)
    predicted = pd.DataFrame(
        {"prediction": (trained.spark_probs[:EXAMPLE_ROWS] >= 0.5).astype("float64")}
    )
    with mlflow.start_run(experiment_id=experiment, run_name=inputs.MODEL_NAME) as run:
        mlflow.log_params(
            {
                "train_months": ",".join(map(str, trained.spec.train_months)),
                "test_months": ",".join(map(str, trained.spec.test_months)),
                **{f"lr_{k}": v for k, v in trained.spec.params.items()},
                **params,
            }
        )
        mlflow.log_metrics(
            {**trained.metrics, **{f"seconds_{k}": v for k, v in trained.seconds.items()}}
        )
        mlflow.set_tags(dict(tags))
        mlflow.log_dict({"feature_refs": list(feature_refs)}, FEATURE_REFS_ARTIFACT)
        mlflow_spark.log_model(
            trained.spark_model,
            SPARK_ARTIFACT,
            signature=infer_signature(example, predicted),
            input_example=example,
            pip_requirements=_pins("pyspark"),
        )
        mlflow_onnx.log_model(
            trained.onnx, name=ONNX_ARTIFACT, pip_requirements=_pins("onnx", "onnxruntime")
        )
        return run.info.run_id


def register(mlflow_res: MlflowResource, run_id: str) -> str:
    """Register the run's Spark model as a new version of ``flight_late_arrival``."""
    import mlflow

    _quiet()
    mlflow_res.client()
    version = mlflow.register_model(f"runs:/{run_id}/{SPARK_ARTIFACT}", inputs.MODEL_NAME)
    return str(version.version)


def write_serving(mlflow_res: MlflowResource, run_id: str, spec: Mapping[str, Any]) -> None:
    """Store ``serving.json`` in the version's run (after registering: it names the version)."""
    mlflow_res.client().log_dict(run_id, dict(spec), SERVING_ARTIFACT)


def record_verdict(
    mlflow_res: MlflowResource, version: str, passed: bool, reasons: Sequence[str]
) -> None:
    """Tag the version with the gate's verdict and, if refused, why."""
    client = mlflow_res.client()
    verdict = "passed" if passed else "refused"
    client.set_model_version_tag(inputs.MODEL_NAME, version, GATE_TAG, verdict)
    if reasons:
        text = "; ".join(reasons)
        client.set_model_version_tag(inputs.MODEL_NAME, version, GATE_REASONS_TAG, text[:5000])
        client.update_model_version(inputs.MODEL_NAME, version, f"Refused as champion: {text}")


def settle(
    mlflow_res: MlflowResource,
    version: str,
    run_id: str,
    reasons: Sequence[str],
    compared: str | None,
    locks: Locks | None,
) -> str:
    """Record the gate's verdict and promote ``version`` if it passed, as one compare-and-set.

    Under the ``ml:champion`` lock of ``locks`` (the lake's: files locally, Postgres in
    compose; None: no other writer), the alias is read again: if it no longer points at
    ``compared`` (the champion the gate compared with; None: none), another run promoted
    meanwhile and ``version`` is refused. Returns that refusal's reason, or "".
    """
    held = locks.hold(CHAMPION_LOCK, what=f"Promoting {inputs.MODEL_NAME}") if locks else None
    client = mlflow_res.client()
    try:
        with held or contextlib.nullcontext():
            now = champion_version(mlflow_res)  # raises if the registry cannot say
            moved = ""
            if now != compared and not reasons:
                moved = (
                    f"the champion moved to version {now} while this model was gated against "
                    f"{'version ' + compared if compared else 'no champion'}; materialize "
                    "again to compare with it"
                )
                # Not a verdict on the data: a later run on the same inputs trains again.
                client.set_tag(run_id, GATE_MOVED_TAG, "true")
            refusals = [*reasons, *([f"not_worse_than_champion: {moved}"] if moved else [])]
            record_verdict(mlflow_res, version, not refusals, refusals)
            if not refusals:
                promote(mlflow_res, version)
            client.set_tag(run_id, GATE_TAG, "refused" if refusals else "passed")
            return moved
    except BaseException as err:
        # Interrupted before the alias moved: never leave a version that looks promotable.
        with contextlib.suppress(Exception):
            if champion_version(mlflow_res) != version:
                why = [f"promotion did not complete: {type(err).__name__}: {err}"]
                record_verdict(mlflow_res, version, False, why)
                client.set_tag(run_id, GATE_TAG, "refused")
                client.set_tag(run_id, GATE_MOVED_TAG, "true")
        raise
    finally:
        if locks:
            locks.close()


def promote(mlflow_res: MlflowResource, version: str) -> None:
    """Point the alias ``champion`` at ``version`` (only the gate calls this)."""
    mlflow_res.client().set_registered_model_alias(inputs.MODEL_NAME, CHAMPION_ALIAS, version)


class RegistryError(OneRingError):
    """The registry could not be read (e.g. SQLite busy, a server down): try again."""

    retryable = True


# What MLflow answers for a model that was never registered, and for a missing alias.
NOT_THERE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def champion_version(mlflow_res: MlflowResource) -> str | None:
    """The version holding ``champion``, or None (no registry, model or alias yet).

    Raises:
        RegistryError: the registry did not answer (never taken for "no champion").
    """
    from mlflow.exceptions import MlflowException

    if not mlflow_res.exists:
        return None
    try:
        found = mlflow_res.client().get_model_version_by_alias(inputs.MODEL_NAME, CHAMPION_ALIAS)
    except MlflowException as err:
        if err.error_code in NOT_THERE:
            return None
        raise RegistryError(
            f"cannot read {inputs.MODEL_NAME}@{CHAMPION_ALIAS} in {mlflow_res.display_uri}: "
            f"{err.error_code}: {err.message}"
        ) from None
    return str(found.version)


def load_champion(mlflow_res: MlflowResource) -> Champion | None:
    """The current champion with its metrics, ``serving.json`` and ONNX form, or None.

    Raises:
        ConfigError: the champion's run lacks its serving form.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    version = champion_version(mlflow_res)
    if version is None:
        return None
    _quiet()
    client = mlflow_res.client()
    found = client.get_model_version(inputs.MODEL_NAME, version)
    run_id = str(found.run_id)
    try:
        serving = mlflow.artifacts.load_dict(f"runs:/{run_id}/{SERVING_ARTIFACT}")
        onnx = _onnx_bytes(run_id)
    except (MlflowException, OSError, StopIteration) as err:
        raise ConfigError(
            f"{inputs.MODEL_NAME} version {version} (run {run_id}) holds {CHAMPION_ALIAS!r} "
            f"but its serving form cannot be read: {err}"
        ) from None
    data = client.get_run(run_id).data
    return Champion(version, run_id, dict(data.metrics), serving, onnx, dict(data.params))


def _onnx_bytes(run_id: str) -> bytes:
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="onering-onnx-") as tmp:
        uri = f"runs:/{run_id}/{ONNX_ARTIFACT}"
        folder = mlflow.artifacts.download_artifacts(uri, dst_path=tmp)
        return next(Path(folder).glob("*.onnx")).read_bytes()


def version_tags(mlflow_res: MlflowResource, version: str) -> dict[str, str]:
    """A version's tags (e.g. the gate's verdict), for tests and `onering` commands."""
    found = mlflow_res.client().get_model_version(inputs.MODEL_NAME, version)
    return dict(found.tags)


def logged_version(mlflow_res: MlflowResource, version: str) -> LoggedVersion:
    """One version's run tags and metrics."""
    client = mlflow_res.client()
    run_id = str(client.get_model_version(inputs.MODEL_NAME, version).run_id)
    data = client.get_run(run_id).data
    return LoggedVersion(str(version), run_id, dict(data.tags), dict(data.metrics))


def trained_on(mlflow_res: MlflowResource, fingerprint: str) -> list[LoggedVersion]:
    """The registered versions whose run carries ``fingerprint``, newest first.

    Raises:
        ValueError: ``fingerprint`` is not a hex digest (it is put in a search filter).
    """
    if not fingerprint or any(c not in "0123456789abcdef" for c in fingerprint):
        raise ValueError(f"{fingerprint!r} is not a hex digest")
    if not mlflow_res.exists:
        return []
    client = mlflow_res.client()
    experiment = client.get_experiment_by_name(mlflow_res.experiment)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'"
    )
    by_id = {r.info.run_id: r.data for r in runs}
    if not by_id:
        return []
    found = [
        LoggedVersion(str(v.version), str(v.run_id), dict(data.tags), dict(data.metrics))
        for v in client.search_model_versions(f"name = '{inputs.MODEL_NAME}'")
        if (data := by_id.get(str(v.run_id))) is not None
    ]
    return sorted(found, key=lambda v: int(v.version), reverse=True)
