"""The champion as served: its ONNX bytes and ``serving/serving.json`` (contract 3).

:func:`load_champion` resolves the alias ``champion`` of ``flight_late_arrival`` in the
MLflow registry and reads only what serving needs from that version's run: the ONNX form
(artifact ``onnx_model``) and ``serving/serving.json``. No Spark session, no Spark model.
MLflow is imported inside :func:`load_champion` (it takes seconds).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.ml.inputs import (
    CATEGORICAL_COLUMNS,
    DERIVED_COLUMNS,
    MODEL_NAME,
    input_type,
)

CHAMPION_ALIAS = "champion"
ONNX_ARTIFACT = "onnx_model"
SERVING_ARTIFACT = "serving/serving.json"
DEFAULT_THRESHOLD = 0.5
MATERIALIZE_HINT = "run `onering materialize --select 'group:ml'` first"


class NoChampionError(OneRingError):
    """The registry has no champion to serve (no model trained, or none passed the gate)."""

    retryable = False


@dataclass(frozen=True)
class OnnxInput:
    """One input of the ONNX form: its name and whether it takes strings or floats."""

    name: str
    type: str


@dataclass(frozen=True)
class ServingSpec:
    """``serving.json``: what a request needs and how the ONNX form is called.

    Attributes:
        model_name: the registered model.
        version: the registered version being served.
        feature_refs: Feast references ``view:feature`` looked up online.
        request_fields: fields derived from the request (``dep_hour``, ``day_of_week``).
        onnx_inputs: the ONNX inputs, in order.
        probability_output: the ONNX output holding ``[P(not late), P(late)]`` per row.
        fill_values: what a missing or null numeric input becomes (training's medians).
        tolerance: the largest ONNX-vs-Spark probability difference the gate accepted.
        threshold: ``late`` is ``probability >= threshold`` (Spark's default 0.5).
    """

    model_name: str
    version: str
    feature_refs: tuple[str, ...]
    request_fields: tuple[str, ...]
    onnx_inputs: tuple[OnnxInput, ...]
    probability_output: str
    fill_values: dict[str, float]
    tolerance: float
    threshold: float = DEFAULT_THRESHOLD

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features' column names (the part after ``view:``)."""
        return tuple(ref.partition(":")[2] for ref in self.feature_refs)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], version: str) -> ServingSpec:
        """Parse and check ``serving.json``; ``version`` is the registry's, which wins.

        Raises:
            ConfigError: a key is missing, or an ONNX input is neither a request field, a
                derived field nor a feature, or has no fill value (the message says which).
        """
        where = f"{MODEL_NAME} version {version}: {SERVING_ARTIFACT}"
        missing = [k for k in ("feature_refs", "onnx_inputs", "fill_values") if k not in data]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}; retrain the model.")
        refs = tuple(str(r) for r in data["feature_refs"])
        bad_refs = [r for r in refs if r.count(":") != 1]
        if bad_refs:
            raise ConfigError(f"{where}: feature refs must be view:feature, got {bad_refs}.")
        spec = cls(
            model_name=str(data.get("model_name", MODEL_NAME)),
            version=str(version),
            feature_refs=refs,
            request_fields=tuple(data.get("request_fields", DERIVED_COLUMNS)),
            onnx_inputs=tuple(
                OnnxInput(str(i["name"]), str(i["type"])) for i in data["onnx_inputs"]
            ),
            probability_output=str(data.get("probability_output", "probability")),
            fill_values={str(k): float(v) for k, v in data["fill_values"].items()},
            tolerance=float(data.get("tolerance", 0.0)),
            threshold=float(data.get("threshold", DEFAULT_THRESHOLD)),
        )
        spec.check(where)
        return spec

    def check(self, where: str) -> None:
        """Every ONNX input can be filled from a request, a derived field or a feature."""
        known = set(CATEGORICAL_COLUMNS) | set(DERIVED_COLUMNS) | set(self.feature_names)
        for item in self.onnx_inputs:
            if item.name not in known:
                raise ConfigError(f"{where}: ONNX input {item.name!r} has no source.")
            if item.type != input_type(item.name):
                raise ConfigError(
                    f"{where}: ONNX input {item.name!r} is {item.type}, "
                    f"expected {input_type(item.name)}."
                )
            if item.name in self.feature_names and item.name not in self.fill_values:
                raise ConfigError(f"{where}: ONNX input {item.name!r} has no fill value.")


@dataclass(frozen=True)
class Champion:
    """The served model: its spec, the ONNX form's bytes and the run it came from."""

    spec: ServingSpec
    onnx: bytes
    run_id: str


def tracking_uri(state_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set (compose), else the local SQLite registry."""
    env = os.environ if env is None else env
    return env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}"


def _version(uri: str, alias: str) -> Any:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise NoChampionError(f"No MLflow registry at {uri} yet: {MATERIALIZE_HINT}.")
    try:
        return MlflowClient(tracking_uri=uri).get_model_version_by_alias(MODEL_NAME, alias)
    except MlflowException as err:
        raise NoChampionError(
            f"No {alias!r} version of {MODEL_NAME} in {uri} ({err.message}): {MATERIALIZE_HINT}."
        ) from None


def champion_version(uri: str, alias: str = CHAMPION_ALIAS) -> str:
    """The registered version holding ``alias`` (nothing downloaded).

    Raises:
        NoChampionError: no such model or alias yet (says how to make one).
    """
    return str(_version(uri, alias).version)


def load_champion(uri: str, alias: str = CHAMPION_ALIAS) -> Champion:
    """The version of ``flight_late_arrival`` that holds ``alias``, read from ``uri``.

    Raises:
        NoChampionError: no such model or alias yet (says how to make one).
        ConfigError: its run lacks the ONNX form or ``serving.json``, or they disagree.
    """
    import mlflow
    from mlflow.artifacts import download_artifacts, load_dict
    from mlflow.exceptions import MlflowException

    version = _version(uri, alias)
    run = f"runs:/{version.run_id}"
    where = f"{MODEL_NAME} version {version.version} (run {version.run_id})"
    mlflow.set_tracking_uri(uri)
    try:
        # MLflow draws a progress bar per download on stderr: noise in a server's log.
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        serving = load_dict(f"{run}/{SERVING_ARTIFACT}")
        with tempfile.TemporaryDirectory(prefix="onering-serving-") as tmp:
            folder = download_artifacts(f"{run}/{ONNX_ARTIFACT}", dst_path=tmp)
            onnx = next(Path(folder).glob("*.onnx")).read_bytes()
    except (MlflowException, OSError, StopIteration) as err:
        raise ConfigError(f"{where}: cannot read its serving form: {err}") from None
    spec = ServingSpec.from_json(serving, str(version.version))
    return Champion(spec=spec, onnx=onnx, run_id=str(version.run_id))
