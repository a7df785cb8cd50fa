"""The training step as plain functions: decide, then train, gate, log, register, promote.

Called by the ``ml/flight_late_arrival`` asset and by the benchmark alike. Order matters:
the gate is evaluated before anything is logged (so the run carries its verdict), the
version's ``serving.json`` is written before the alias can point at it, and the alias
moves last, only when every gate check passed.

Every trained version's run carries the :class:`Fingerprint` of what determined it. Before
starting Spark, :func:`decide` looks for a version with the same fingerprint: if it is the
champion, the step reuses it (:func:`replay` audits its logged metrics, as the checks alone
do); if the newest such version was refused against the same champion, the step fails the
same way without training (same data, config and code: same verdict). Anything else trains.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onering_assets.checks.outcome import Outcome
from onering_assets.errors import ConfigError
from onering_assets.ml import gate, inputs, registry, training
from onering_assets.ml.digest import digest, digest_json, frame_digest, package_version
from onering_assets.ml.training import TrainSpec, train
from onering_assets.resources.locks import Locks
from onering_assets.resources.mlflow import MlflowResource

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

Log = Callable[[str], Any]
LOGGER = logging.getLogger(__name__)
# Libraries whose version can change the fitted model, its ONNX form or its parity.
FINGERPRINT_PACKAGES = ("pyspark", "onnxmltools", "onnx", "onnxruntime")
# The code that turns the training set into a model: the Spark job, the split and fills.
FINGERPRINT_CODE = (training.JOB_FILE, Path(training.__file__))
SAME_INPUTS = "this exact training set, config and code"


@dataclass(frozen=True)
class Fingerprint:
    """What determines a trained model and its verdict: one digest over named part digests.

    Parts: ``training_set`` (its rows), ``config`` (months, LogisticRegression params, gate
    thresholds), ``inputs`` (the model's columns, their ONNX types, the Feast references
    and the code that fills them), ``code`` (``platform/ml/training/job.py`` and
    ``onering_assets/ml/training.py``), ``libraries`` (pyspark, onnxmltools, onnx,
    onnxruntime versions).
    """

    digest: str
    parts: dict[str, str]

    def tags(self) -> dict[str, str]:
        """The run tags that record it."""
        return {
            registry.FINGERPRINT_TAG: self.digest,
            registry.FINGERPRINT_PARTS_TAG: json.dumps(self.parts, sort_keys=True),
        }

    def changed_since(self, tags: Mapping[str, str]) -> list[str]:
        """The parts that differ from those a run logged (every part if it logged none)."""
        try:
            logged = json.loads(tags.get(registry.FINGERPRINT_PARTS_TAG, "{}"))
        except ValueError:
            logged = {}
        return [name for name, value in self.parts.items() if logged.get(name) != value]


def fingerprint(
    frame: pd.DataFrame, spec: TrainSpec, config: gate.GateConfig = gate.DEFAULT_GATE
) -> Fingerprint:
    """The fingerprint of training ``frame`` with ``spec``, gated with ``config``."""
    contract = {
        "categorical": list(inputs.CATEGORICAL_COLUMNS),
        "onnx_inputs": inputs.onnx_inputs(),
        "feature_refs": [r.ref for r in inputs.feature_refs()],
        "label": inputs.LABEL,
        "fill_code": [inspect.getsource(f) for f in (inputs.fill_values, inputs.model_frame)],
    }
    parts = {
        "training_set": frame_digest(frame),
        "config": digest_json(
            {
                "train_months": list(spec.train_months),
                "test_months": list(spec.test_months),
                "params": dict(spec.params),
                "gate": asdict(config),
            }
        ),
        "inputs": digest_json(contract),
        "code": digest_json({p.name: digest(p.read_bytes()) for p in FINGERPRINT_CODE}),
        "libraries": digest_json({p: package_version(p) for p in FINGERPRINT_PACKAGES}),
    }
    return Fingerprint(digest_json(parts), parts)


@dataclass(frozen=True)
class GateResult:
    """What the step did: the gate's outcomes, the version, and whether it is champion.

    ``reused`` says why nothing was trained (a version with the same fingerprint decided);
    it is empty when a new version was trained.
    """

    outcomes: list[Outcome]
    version: str
    run_id: str
    promoted: bool
    previous_champion: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    reused: str = ""

    @property
    def champion_note(self) -> str:
        if self.promoted:
            return f"version {self.version} " + ("stays" if self.reused else "is now") + " champion"
        if self.previous_champion is None:
            return "there is still no champion"
        return f"the champion stays version {self.previous_champion}"

    def refusal(self, failed: int) -> str:
        """Why the step fails: the version is refused as champion (``failed`` checks)."""
        if self.reused:
            return (
                f"version {self.version} is registered but refused as champion; it was not "
                f"trained again: {self.reused} (set the run config's force to train anyway); "
                f"{self.champion_note}."
            )
        return (
            f"version {self.version} is registered but refused as champion ({failed} gate "
            f"check(s) failed); {self.champion_note}."
        )


@dataclass(frozen=True)
class Decision:
    """Whether the step trains (``prior`` is None) and why; or the version that decides."""

    why: str
    champion: str | None
    prior: registry.LoggedVersion | None = None


def decide(mlflow_res: MlflowResource, fp: Fingerprint) -> Decision:
    """Reuse the champion, repeat a refusal, or train (see the module docstring).

    A refusal is repeated only against the champion it was gated against: a newer champion
    could change ``not_worse_than_champion``'s verdict.
    """
    champion = registry.champion_version(mlflow_res)
    matches = registry.trained_on(mlflow_res, fp.digest)
    same = next((m for m in matches if m.version == champion), None)
    if same is not None:
        why = f"the champion version {champion} was trained on {SAME_INPUTS}"
        return Decision(why, champion, same)
    newest = matches[0] if matches else None
    replayable = newest is not None and registry.GATE_MOVED_TAG not in newest.tags
    if newest is not None and replayable and newest.verdict == "refused":
        against = _gated_against(newest)
        if against is not None and against.get("version") == champion:
            return Decision(
                f"version {newest.version} was trained on {SAME_INPUTS} and refused as "
                "champion; the data did not change, so the verdict would not",
                champion,
                newest,
            )
        now = f"version {champion}" if champion else "none"
        return Decision(
            f"version {newest.version} was refused on {SAME_INPUTS}, but the champion has "
            f"changed since (now {now})",
            champion,
        )
    if champion is None:
        return Decision("there is no champion yet", None)
    tags = registry.logged_version(mlflow_res, champion).tags
    if registry.FINGERPRINT_TAG not in tags:
        return Decision(f"the champion version {champion}'s run has no fingerprint", champion)
    changed = ", ".join(fp.changed_since(tags))
    return Decision(f"the champion version {champion} was trained on another {changed}", champion)


def _gated_against(logged: registry.LoggedVersion) -> dict[str, Any] | None:
    """The champion a version was gated against (``{"version": None}`` if none), if logged."""
    text = logged.tags.get(registry.GATE_CHAMPION_TAG)
    if text is None:
        return None
    if text == "none":
        return {"version": None}
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _champion_score(logged: registry.LoggedVersion) -> gate.ChampionScore | None:
    against = _gated_against(logged) or {}
    if against.get("version") is None:
        return None
    return gate.ChampionScore(**{**against, "months": tuple(against.get("months", ()))})


def replay(
    mlflow_res: MlflowResource,
    decision: Decision,
    fp: Fingerprint,
    config: gate.GateConfig,
    *,
    started: float | None = None,
) -> GateResult:
    """The verdict of ``decision.prior`` again, from its run's logged metrics, without Spark.

    The reused champion is audited as the checks alone audit it; a refused version's checks
    are evaluated again from its logged metrics and the champion score it logged.
    ``started`` (``time.perf_counter()``) is when the step began, for its ``seconds``.
    """
    started = time.perf_counter() if started is None else started
    prior = decision.prior
    if prior is None:
        raise ValueError(f"nothing to replay: {decision.why}")
    is_champion = prior.version == decision.champion
    if is_champion:
        outcomes = gate.audit_logged(mlflow_res, prior.version, config)
    else:
        outcomes = gate.evaluate(prior.metrics, _champion_score(prior), config)
    return GateResult(
        outcomes=outcomes,
        version=prior.version,
        run_id=prior.run_id,
        promoted=is_champion,
        previous_champion=decision.champion,
        reused=decision.why,
        metadata={
            "version": prior.version,
            "run_id": prior.run_id,
            "champion": decision.champion or "none",
            "reused": decision.why,
            "fingerprint": fp.digest,
            "tracking_uri": mlflow_res.display_uri,
            **prior.metrics,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


def _score_champion(
    mlflow_res: MlflowResource, trained: training.TrainedModel
) -> gate.ChampionScore | None:
    """The champion scored beside ``trained`` (None: no champion).

    A champion whose serving form cannot be read cannot be compared: the gate refuses
    unless ``allow_incomparable_champion`` is set (training itself goes on).
    """
    try:
        champion = registry.load_champion(mlflow_res)
    except ConfigError as err:
        version = registry.champion_version(mlflow_res) or "?"
        return gate.ChampionScore(version, 0.0, False, f"its serving form cannot be read ({err})")
    return gate.score_champion(champion, trained) if champion else None


def train_and_gate(
    frame: pd.DataFrame,
    spark: SparkSession,
    mlflow_res: MlflowResource,
    spec: TrainSpec,
    config: gate.GateConfig = gate.DEFAULT_GATE,
    *,
    tags: dict[str, str] | None = None,
    fp: Fingerprint | None = None,
    why: str = "",
    log: Log = LOGGER.info,
    locks: Locks | None = None,
) -> GateResult:
    """Train on ``frame`` (the training set), gate, log and register; promote if it passed.

    The run is tagged with ``fp`` (computed here when not given) and the champion the gate
    compared with, so a later step on the same inputs can skip training (:func:`decide`).
    The verdict is settled under ``locks`` (:func:`registry.settle`): a champion that moved
    since the gate read it refuses this version.
    """
    started = time.perf_counter()
    fp = fp or fingerprint(frame, spec, config)
    log(
        f"fitting {inputs.MODEL_NAME} with Spark: train months {list(spec.train_months)}, "
        f"test months {list(spec.test_months)} of {len(frame):,} flights (the full year "
        "takes 1-2 minutes on 2 cores)"
    )
    trained = train(spark, frame, spec)
    m = trained.metrics
    log(
        f"trained on {int(m['train_rows'])} flights in {trained.seconds['fit']:.1f} s: test AUC "
        f"{m['test_auc']:.4f}, baseline {m['baseline_auc']:.4f}, ONNX max abs diff "
        f"{m['onnx_max_abs_diff']:.2g}"
    )
    score = _score_champion(mlflow_res, trained)
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
        tags={
            **(tags or {}),
            **fp.tags(),
            # Settled by registry.settle (passed only once the alias moved to it).
            registry.GATE_TAG: "refused" if reasons else "pending",
            registry.GATE_CHAMPION_TAG: json.dumps(asdict(score)) if score else "none",
        },
    )
    version = registry.register(mlflow_res, run_id)
    spec_json = registry.serving_spec(trained, version, config.onnx_tolerance, refs)
    registry.write_serving(mlflow_res, run_id, spec_json)
    compared = score.version if score else None
    moved = registry.settle(mlflow_res, version, run_id, reasons, compared, locks)
    if moved:
        outcomes = [o for o in outcomes if o.name != gate.NOT_WORSE_THAN_CHAMPION]
        outcomes.append(Outcome(gate.NOT_WORSE_THAN_CHAMPION, False, moved, failing=1))
        reasons = gate.refusals(outcomes)
    log(
        f"registered {inputs.MODEL_NAME} version {version} (run {run_id}): "
        + ("promoted to champion" if not reasons else "refused: " + "; ".join(reasons))
    )
    return GateResult(
        outcomes=outcomes,
        version=version,
        run_id=run_id,
        promoted=not reasons,
        previous_champion=compared,
        metadata={
            "version": version,
            "run_id": run_id,
            "champion": version if not reasons else (compared or "none"),
            "tracking_uri": mlflow_res.display_uri,
            **({"trained_because": why} if why else {}),
            "fingerprint": fp.digest,
            **m,
            "champion_auc_same_flights": score.auc if score and score.rescored else None,
            "seconds": round(time.perf_counter() - started, 3),
            "step_seconds": trained.seconds,
        },
    )
