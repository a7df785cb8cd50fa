"""The training step as one plain function: train, gate, log, register, promote.

Called by the ``ml/flight_late_arrival`` asset and by the benchmark alike. Order matters:
the gate is evaluated before anything is logged (so the run carries its verdict), the
version's ``serving.json`` is written before the alias can point at it, and the alias
moves last, only when every gate check passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from onering_assets.checks.outcome import Outcome
from onering_assets.ml import gate, inputs, registry
from onering_assets.ml.training import TrainSpec, train
from onering_assets.resources.mlflow import MlflowResource

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

Log = Callable[[str], Any]
LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    """What the step did: the gate's outcomes, the new version, and whether it was promoted."""

    outcomes: list[Outcome]
    version: str
    run_id: str
    promoted: bool
    previous_champion: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def champion_note(self) -> str:
        if self.promoted:
            return f"version {self.version} is now champion"
        if self.previous_champion is None:
            return "there is still no champion"
        return f"the champion stays version {self.previous_champion}"


def train_and_gate(
    frame: pd.DataFrame,
    spark: SparkSession,
    mlflow_res: MlflowResource,
    spec: TrainSpec,
    config: gate.GateConfig = gate.DEFAULT_GATE,
    *,
    tags: dict[str, str] | None = None,
    log: Log = LOGGER.info,
) -> GateResult:
    """Train on ``frame`` (the training set), gate, log and register; promote if it passed."""
    started = time.perf_counter()
    trained = train(spark, frame, spec)
    m = trained.metrics
    log(
        f"trained on {int(m['train_rows'])} flights in {trained.seconds['fit']:.1f} s: test AUC "
        f"{m['test_auc']:.4f}, baseline {m['baseline_auc']:.4f}, ONNX max abs diff "
        f"{m['onnx_max_abs_diff']:.2g}"
    )
    champion = registry.load_champion(mlflow_res)
    score = gate.score_champion(champion, trained) if champion else None
    outcomes = gate.evaluate(trained.metrics, score, config)
    reasons = gate.refusals(outcomes)
    refs = [r.ref for r in inputs.feature_refs()]
    run_id = registry.log_run(
        mlflow_res,
        trained,
        feature_refs=refs,
        params={
            "gate_auc_floor": config.auc_floor,
            "gate_onnx_tolerance": config.onnx_tolerance,
            "gate_champion_tolerance": config.champion_tolerance,
        },
        tags={**(tags or {}), registry.GATE_TAG: "refused" if reasons else "passed"},
    )
    version = registry.register(mlflow_res, run_id)
    spec_json = registry.serving_spec(trained, version, config.onnx_tolerance, refs)
    registry.write_serving(mlflow_res, run_id, spec_json)
    registry.record_verdict(mlflow_res, version, not reasons, reasons)
    if not reasons:
        registry.promote(mlflow_res, version)
    log(
        f"registered {inputs.MODEL_NAME} version {version} (run {run_id}): "
        + ("promoted to champion" if not reasons else "refused: " + "; ".join(reasons))
    )
    return GateResult(
        outcomes=outcomes,
        version=version,
        run_id=run_id,
        promoted=not reasons,
        previous_champion=champion.version if champion else None,
        metadata={
            "version": version,
            "run_id": run_id,
            "champion": version if not reasons else (champion.version if champion else "none"),
            "tracking_uri": mlflow_res.display_uri,
            **m,
            "champion_auc_same_flights": score.auc if score else None,
            "seconds": round(time.perf_counter() - started, 3),
            "step_seconds": trained.seconds,
        },
    )
