"""The champion gate: what a newly trained model must show before it becomes ``champion``.

Four blocking checks, all on the test months (never seen in training):

- ``onnx_parity``: the ONNX form reproduces Spark's probability on every test flight within
  ``onnx_tolerance`` (default 1e-5; LogisticRegression measured ~3e-7 on the full year).
- ``auc_floor``: test AUC ≥ ``auc_floor`` (default 0.66: the full year, January–September
  train / October–December test, measured 0.704; the floor leaves 0.04 for data changes).
- ``beats_baseline``: test AUC > the baseline's, the carrier's late rate over the previous
  28 days used as the score (measured 0.624 on the full year).
- ``not_worse_than_champion``: the new model's AUC ≥ the current champion's minus
  ``champion_tolerance`` (default 0.01), both scored on the same held-out flights: the test
  flights of the months neither model trained on (the champion through its own ONNX form
  and fill values). Without a champion it passes. When there is no such flight (the
  champion trained on every test month, or those months hold one class) or the champion
  needs inputs the training set no longer has, the two cannot be compared and the check
  fails saying why, unless ``allow_incomparable_champion`` is set (then it passes, saying
  it compared nothing).

A model failing any check stays registered, tagged refused with the reasons, and the
alias does not move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from onering_assets.checks.outcome import Outcome
from onering_assets.checks.specs import CheckDecl
from onering_assets.ml import inputs
from onering_assets.ml.registry import Champion
from onering_assets.ml.training import TrainedModel, auc, month_range, onnx_probabilities
from onering_assets.resources.mlflow import MlflowResource

ONNX_PARITY = "onnx_parity"
AUC_FLOOR = "auc_floor"
BEATS_BASELINE = "beats_baseline"
NOT_WORSE_THAN_CHAMPION = "not_worse_than_champion"


@dataclass(frozen=True)
class GateConfig:
    """The gate's thresholds (see the module docstring for where the defaults come from)."""

    auc_floor: float = 0.66
    onnx_tolerance: float = 1e-5
    champion_tolerance: float = 0.01
    allow_incomparable_champion: bool = False


DEFAULT_GATE = GateConfig()


def gate_decls(config: GateConfig = DEFAULT_GATE) -> list[CheckDecl]:
    """The four blocking checks; descriptions state the default thresholds."""
    return [
        CheckDecl(
            ONNX_PARITY,
            True,
            "The ONNX form's P(late) equals Spark's on every test flight within "
            f"{config.onnx_tolerance:g} (max abs difference; LogisticRegression converts "
            "exactly, ~3e-7 measured).",
        ),
        CheckDecl(
            AUC_FLOOR,
            True,
            f"Test-month AUC ≥ {config.auc_floor:g} (default floor; the full year measured "
            "0.704 with January–September train, October–December test).",
        ),
        CheckDecl(
            BEATS_BASELINE,
            True,
            "Test-month AUC beats the baseline: the carrier's 28-day late rate as the score "
            "(0.624 on the full year).",
        ),
        CheckDecl(
            NOT_WORSE_THAN_CHAMPION,
            True,
            "AUC ≥ the current champion's minus "
            f"{config.champion_tolerance:g}, both on the test flights of the months neither "
            "trained on; passes when there is no champion, fails when they cannot be compared.",
        ),
    ]


@dataclass(frozen=True)
class ChampionScore:
    """The champion and the new model scored on the same held-out flights.

    Attributes:
        version: the champion's registered version.
        auc: the champion's AUC on those flights (its logged test AUC when not ``rescored``).
        rescored: both were scored on the same flights; False: they cannot be compared.
        why: why they cannot be compared (empty when ``rescored``).
        model_auc: the new model's AUC on the same flights.
        months: the test months compared on (those the champion did not train on).
        flights: how many test flights that is.
    """

    version: str
    auc: float
    rescored: bool
    why: str = ""
    model_auc: float | None = None
    months: tuple[int, ...] = ()
    flights: int = 0

    @property
    def how(self) -> str:
        if self.rescored:
            return f"both on the {self.flights} test flights of months {list(self.months)}"
        return f"not comparable: {self.why}"


def score_champion(champion: Champion, trained: TrainedModel) -> ChampionScore:
    """The champion's and ``trained``'s AUC on the test flights neither trained on.

    Not comparable (``rescored`` False, ``why`` says why) when the champion trained on every
    test month, when the months left hold one class, or when it needs inputs the set lacks.
    """
    import numpy as np
    import pandas as pd

    spec = champion.serving
    names = [i["name"] for i in spec.get("onnx_inputs", [])]
    rows = trained.test_rows
    logged = champion.metrics.get("test_auc", 0.0)

    def incomparable(why: str) -> ChampionScore:
        return ChampionScore(champion.version, logged, False, why)

    if "train_months" not in champion.params:
        return incomparable("its run does not record the months it was trained on")
    seen = set(month_range(champion.params["train_months"]))
    months = tuple(m for m in trained.spec.test_months if m not in seen)

    if not months:
        return incomparable(f"it was trained on every test month {list(trained.spec.test_months)}")
    if not names or any(n not in rows.columns for n in names):
        missing = [n for n in names if n not in rows.columns]
        return incomparable(f"it needs inputs the training set lacks: {missing or 'none named'}")
    month = pd.Series(rows["sched_dep_at"]).dt.tz_convert(inputs.TIMEZONE).dt.month
    held_out = month.isin(months).to_numpy()
    labels = pd.Series(rows[inputs.LABEL]).to_numpy()[held_out]
    if len(np.unique(labels)) < 2:
        return incomparable(
            f"the test months it did not train on ({list(months)}) hold "
            f"{int(held_out.sum())} flights of one class"
        )
    frame = pd.DataFrame({n: rows[n] for n in names}).loc[held_out]
    fills = {n: float(v) for n, v in spec.get("fill_values", {}).items() if n in frame.columns}
    frame = frame.astype({n: "float64" for n in fills}).fillna(fills)
    probs = onnx_probabilities(champion.onnx, frame, spec["onnx_inputs"])
    return ChampionScore(
        champion.version,
        auc(labels, probs),
        True,
        model_auc=auc(labels, np.asarray(trained.spark_probs)[held_out]),
        months=months,
        flights=int(held_out.sum()),
    )


def evaluate(
    metrics: Mapping[str, float],
    champion: ChampionScore | None,
    config: GateConfig = DEFAULT_GATE,
) -> list[Outcome]:
    """Every gate check's outcome for a model's test metrics (``TrainedModel.metrics``)."""
    m = metrics
    model_auc, diff = m["test_auc"], m["onnx_max_abs_diff"]
    tested = f"on {int(m['test_rows'])} test flights"
    outcomes = [
        _outcome(
            ONNX_PARITY,
            diff <= config.onnx_tolerance,
            f"ONNX vs Spark max abs difference {diff:.3g} {tested} "
            f"({'within' if diff <= config.onnx_tolerance else 'over'} {config.onnx_tolerance:g})",
            {"max_abs_diff": diff, "tolerance": config.onnx_tolerance},
        ),
        _outcome(
            AUC_FLOOR,
            model_auc >= config.auc_floor,
            f"test AUC {model_auc:.4f} {tested} "
            f"({'at or above' if model_auc >= config.auc_floor else 'below'} the floor "
            f"{config.auc_floor:g})",
            {"test_auc": model_auc, "auc_floor": config.auc_floor},
        ),
        _outcome(
            BEATS_BASELINE,
            model_auc > m["baseline_auc"],
            f"test AUC {model_auc:.4f} vs the baseline's {m['baseline_auc']:.4f} "
            "(the carrier's 28-day late rate as the score)",
            {"test_auc": model_auc, "baseline_auc": m["baseline_auc"]},
        ),
    ]
    outcomes.append(_versus_champion(model_auc, champion, config))
    return outcomes


def _versus_champion(
    model_auc: float, champion: ChampionScore | None, config: GateConfig
) -> Outcome:
    if champion is None:
        return Outcome(NOT_WORSE_THAN_CHAMPION, True, "no champion yet: nothing to compare with")
    if not champion.rescored:
        allowed = config.allow_incomparable_champion
        summary = f"cannot compare with champion version {champion.version}: {champion.why}; " + (
            "passed because allow_incomparable_champion is set"
            if allowed
            else "set test_months to months it did not train on, or set "
            "allow_incomparable_champion to promote on the other checks"
        )
        return _outcome(
            NOT_WORSE_THAN_CHAMPION,
            allowed,
            summary,
            {
                "champion_version": champion.version,
                "champion_rescored": False,
                "why": champion.why,
                "allow_incomparable_champion": allowed,
            },
        )
    compared = model_auc if champion.model_auc is None else champion.model_auc
    bar = champion.auc - config.champion_tolerance
    passed = compared >= bar
    return _outcome(
        NOT_WORSE_THAN_CHAMPION,
        passed,
        f"AUC {compared:.4f} vs champion version {champion.version}'s {champion.auc:.4f} "
        f"({champion.how}); {'at or above' if passed else 'below'} {bar:.4f} "
        f"(champion minus {config.champion_tolerance:g})",
        {
            "test_auc": compared,
            "champion_version": champion.version,
            "champion_auc": champion.auc,
            "champion_rescored": True,
            "compared_months": list(champion.months),
            "compared_flights": champion.flights,
            "tolerance": config.champion_tolerance,
        },
    )


def _outcome(name: str, passed: bool, summary: str, metadata: dict) -> Outcome:
    return Outcome(name, passed, summary, failing=0 if passed else 1, metadata=metadata)


def refusals(outcomes: list[Outcome]) -> list[str]:
    """``check: summary`` for every failed check (empty: the model may be promoted)."""
    return [f"{o.name}: {o.summary}" for o in outcomes if not o.passed]


def audit_logged(mlflow_res: MlflowResource, version: str, config: GateConfig) -> list[Outcome]:
    """Checks alone: a registered version's logged metrics against the thresholds.

    Nothing is trained; the champion is compared with itself, so that check passes.
    """
    client = mlflow_res.client()
    run_id = client.get_model_version(inputs.MODEL_NAME, version).run_id
    metrics = client.get_run(str(run_id)).data.metrics
    missing = [k for k in ("test_auc", "baseline_auc", "onnx_max_abs_diff") if k not in metrics]
    if missing:
        reason = f"version {version}'s run lacks the metrics {', '.join(missing)}"
        return [Outcome(d.name, False, reason, failing=1) for d in gate_decls(config)]
    outcomes = [o for o in evaluate(metrics, None, config) if o.name != NOT_WORSE_THAN_CHAMPION]
    return [
        *outcomes,
        Outcome(NOT_WORSE_THAN_CHAMPION, True, f"version {version} is the champion"),
    ]
