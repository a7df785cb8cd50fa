"""The champion as served: its ONNX bytes and ``serving/serving.json`` (contract 3).

:func:`load_champion` resolves the alias ``champion`` of ``flight_late_arrival`` in the
MLflow registry (through :mod:`onering_assets.ml.registry`, which training writes with) and
reads only what serving needs from that version's run: the ONNX form (artifact
``onnx_model``) and ``serving/serving.json``. No Spark session, no Spark model. MLflow is
imported when called (it takes seconds), never at module import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.ml import registry
from onering_assets.ml.inputs import (
    CATEGORICAL_COLUMNS,
    DERIVED_COLUMNS,
    MODEL_NAME,
    input_type,
)
from onering_assets.resources.mlflow import TRACKING_URI_ENV, MlflowResource, mlflow_resource
from onering_assets.settings import Settings

CHAMPION_ALIAS = registry.CHAMPION_ALIAS
SERVING_ARTIFACT = registry.SERVING_ARTIFACT
DEFAULT_THRESHOLD = 0.5
MATERIALIZE_HINT = (
    "run `onering materialize --select 'group:ml'` first (after the feature views, "
    "'group:features')"
)


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


def registry_for(settings: Settings, env: Mapping[str, str] | None = None) -> MlflowResource:
    """The profile's registry: SQLite under the state folder, or ``MLFLOW_TRACKING_URI``.

    Raises:
        ConfigError: compose without ``MLFLOW_TRACKING_URI``.
    """
    if settings.profile == "local":
        return mlflow_resource(settings)
    uri = (os.environ if env is None else env).get(TRACKING_URI_ENV)
    if not uri:
        raise ConfigError(f"Set {TRACKING_URI_ENV} to the MLflow server's URL to serve a model.")
    return MlflowResource(tracking_uri=uri)


def champion_version(mlflow_res: MlflowResource) -> str:
    """The registered version holding ``champion`` (nothing downloaded).

    Raises:
        NoChampionError: no registry, model or champion yet (says how to make one).
    """
    version = registry.champion_version(mlflow_res)
    if version is None:
        raise NoChampionError(_no_champion(mlflow_res))
    return version


def load_champion(mlflow_res: MlflowResource) -> Champion:
    """The champion's ONNX form and parsed ``serving.json``.

    Raises:
        NoChampionError: no registry, model or champion yet (says how to make one).
        ConfigError: the version is not tagged as passed by the gate, its run lacks the
            serving form, or ``serving.json`` is unusable.
    """
    version = champion_version(mlflow_res)
    verdict = registry.version_tags(mlflow_res, version).get(registry.GATE_TAG)
    if verdict != "passed":  # checked before anything is downloaded
        raise ConfigError(
            f"{MODEL_NAME} version {version} holds {CHAMPION_ALIAS!r} but the gate did "
            f"not pass it ({registry.GATE_TAG}={verdict or 'unset'}); the alias was moved by "
            f"hand. Point it at a version that passed, or {MATERIALIZE_HINT}."
        )
    found = registry.load_champion(mlflow_res)
    if found is None:
        raise NoChampionError(_no_champion(mlflow_res))
    spec = ServingSpec.from_json(found.serving, found.version)
    return Champion(spec=spec, onnx=found.onnx, run_id=found.run_id)


def _no_champion(mlflow_res: MlflowResource) -> str:
    return (
        f"No {CHAMPION_ALIAS!r} version of {MODEL_NAME} in {mlflow_res.display_uri} yet: "
        f"{MATERIALIZE_HINT}."
    )
