"""``ml/drift_report``: each month's features and predictions against the training reference.

The reference is what the champion was trained on: the rows of ``ml/training_set`` whose
scheduled departure (New York) falls in the champion's training months (its MLflow run's
``train_months``). The month is that training set's rows of the partition's month: labelled
flights with their features as of ``sched_dep_at - 2 h``, exactly as training saw them.
Both sides are scored with the champion's ONNX form (nulls filled with its fill values, as
serving does), so the predicted probability is compared too.

Evidently's report (``onering_assets.ml.drift``, its defaults untuned) goes to the lake as
``ml/drift/<month>/report.html``, ``report.json`` and ``summary.json``; the asset's
metadata carries the share of drifted columns, which drifted, and each column's test and
score. The check ``drifted_columns_share`` warns (never blocks) when the share reaches
Evidently's drift share. Evidently, MLflow and onnxruntime are imported inside the step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from onering_assets.checks.outcome import Outcome, not_published
from onering_assets.checks.specs import CheckDecl
from onering_assets.factory import build_table_asset
from onering_assets.ml import inputs
from onering_assets.ml.digest import digest, digest_json, frame_digest, package_version
from onering_assets.ml.drift import (
    DEFAULT_DRIFT_SHARE,
    DEFAULTS,
    PREDICTION_COLUMN,
    DriftInputError,
    DriftSummary,
    build_report,
)
from onering_assets.ml.drift_store import (
    read_key,
    read_summary,
    report_months,
    report_uris,
    write_report,
)
from onering_assets.partitions import MONTHLY, selected_partitions
from onering_assets.resources.lake import LakeResource

if TYPE_CHECKING:
    import pandas as pd

    from onering_assets.ml.registry import Champion
    from onering_assets.resources.mlflow import MlflowResource

DRIFT_KEY = dg.AssetKey(["ml", "drift_report"])
TRAINING_SET_KEY = dg.AssetKey(["ml", "training_set"])
MODEL_KEY = dg.AssetKey(["ml", inputs.MODEL_NAME])
GROUP = "drift"
DRIFTED_COLUMNS_SHARE = "drifted_columns_share"
DECLS = [
    CheckDecl(
        DRIFTED_COLUMNS_SHARE,
        False,
        f"Warns when the share of drifted columns reaches Evidently's drift share "
        f"({DEFAULT_DRIFT_SHARE:g}): the month no longer looks like the training reference. "
        "Never blocks: drift is a reason to look (and maybe retrain), not bad data.",
    )
]
TRAIN_HINT = "run `onering materialize --select 'key:\"ml/flight_late_arrival\"'` first"


@dataclass(frozen=True)
class Reference:
    """The champion's training rows, scored by it (``digest``: of those rows and the run)."""

    frame: pd.DataFrame
    version: str
    months: tuple[int, ...]
    digest: str = ""


# What a month's report is computed by: a change here recomputes every month.
REPORT_PACKAGES = ("evidently", "numpy", "scipy", "pandas", "onnxruntime")
REPORT_CODE = (Path(__file__).with_name("drift.py"), Path(__file__))


def report_key(ref: Reference, rows: pd.DataFrame) -> str:
    """The digest of everything a month's report depends on.

    The champion's scored training rows (its run included), the month's rows, Evidently's
    version (and numpy's, scipy's, pandas', onnxruntime's) and the drift code.
    """
    return digest_json(
        {
            "reference": ref.digest,
            "month": frame_digest(rows),
            "libraries": {p: package_version(p) for p in REPORT_PACKAGES},
            "code": [digest(p.read_bytes()) for p in REPORT_CODE],
        }
    )


def local_month(frame: pd.DataFrame) -> pd.Series:
    """``YYYY-MM`` of each row's scheduled departure, in New York time."""
    return frame["sched_dep_at"].dt.tz_convert(inputs.TIMEZONE).dt.strftime("%Y-%m")


def scored(frame: pd.DataFrame, champion: Champion) -> pd.DataFrame:
    """``frame`` with the champion's P(late) per row (its ONNX form, nulls filled)."""
    from onering_assets.ml.training import onnx_probabilities

    filled = inputs.model_frame(frame, champion.serving["fill_values"])
    out = frame.copy()
    out[PREDICTION_COLUMN] = onnx_probabilities(
        champion.onnx, filled, champion.serving["onnx_inputs"]
    )
    return out


def train_months(mlflow_res: MlflowResource, champion: Champion) -> tuple[int, ...]:
    """The months the champion was trained on (its run's ``train_months`` param)."""
    from onering_assets.ml.training import month_range

    params = mlflow_res.client().get_run(champion.run_id).data.params
    if "train_months" not in params:
        raise DriftInputError(
            f"{inputs.MODEL_NAME} version {champion.version}: its run does not record "
            f"train_months, so there is no training reference; {TRAIN_HINT}."
        )
    return month_range(params["train_months"])


def reference(training_set: pd.DataFrame, champion: Champion, months: tuple[int, ...]) -> Reference:
    """The training set's rows of the champion's training months, scored."""
    month = training_set["sched_dep_at"].dt.tz_convert(inputs.TIMEZONE).dt.month
    rows = training_set.loc[month.isin(months)]
    if rows.empty:
        raise DriftInputError(
            f"ml/training_set has no flights in the champion's training months {list(months)}; "
            "materialize ml/training_set, then retrain."
        )
    frame = scored(rows, champion)
    run = digest_json({"run": champion.run_id, "months": list(months)})
    return Reference(frame, champion.version, months, digest_json([run, frame_digest(frame)]))


def month_rows(training_set: pd.DataFrame, month: str) -> pd.DataFrame:
    """The training set's flights of ``month`` (raises if there are none)."""
    rows = training_set.loc[local_month(training_set) == month]
    if rows.empty:
        raise DriftInputError(
            f"ml/training_set has no labelled flights in {month}: materialize Silver for "
            "that month, then ml/training_set, then this report."
        )
    return rows


def share_outcome(found: Mapping[str, DriftSummary | None]) -> Outcome:
    """``drifted_columns_share``: each month's share of drifted columns below the drift share."""
    if not found:
        [outcome] = not_published([DRIFTED_COLUMNS_SHARE], "ml/drift_report")
        return outcome
    missing = [m for m, s in found.items() if s is None]
    if missing:
        return Outcome.failed(
            DRIFTED_COLUMNS_SHARE,
            f"no drift report for {', '.join(missing)} yet; materialize ml/drift_report first",
            missing,
        )
    summaries = {m: s for m, s in found.items() if s is not None}
    meta = {"share_by_month": {m: round(s.share, 4) for m, s in summaries.items()}}
    drifted = {m: s for m, s in summaries.items() if s.dataset_drift}
    if drifted:
        lines = [
            f"{m}: {len(s.drifted_columns)} of {len(s.columns)} columns drifted "
            f"({s.share:.0%} >= {s.drift_share:g}): {', '.join(s.drifted_columns)}"
            for m, s in drifted.items()
        ]
        return Outcome.failed(DRIFTED_COLUMNS_SHARE, "; ".join(lines), list(drifted), meta)
    shares = ", ".join(f"{m} {s.share:.0%}" for m, s in summaries.items())
    return Outcome(
        DRIFTED_COLUMNS_SHARE,
        True,
        f"drifted columns below Evidently's drift share {DEFAULT_DRIFT_SHARE:g}: {shares}",
        metadata=meta,
    )


def month_metadata(summary: DriftSummary, uris: Mapping[str, str]) -> dict[str, Any]:
    """One month's summary as asset metadata."""
    return {
        "share_of_drifted_columns": round(summary.share, 4),
        "drifted_columns": dg.MetadataValue.json(summary.drifted_columns),
        "dataset_drift": summary.dataset_drift,
        "column_tests": dg.MetadataValue.json(
            {
                c.column: {
                    "test": c.test,
                    "score": round(c.score, 6),
                    "threshold": c.threshold,
                    "drifted": c.drifted,
                }
                for c in summary.columns
            }
        ),
        "reference_rows": summary.reference_rows,
        "current_rows": summary.current_rows,
        "report_html": dg.MetadataValue.url(uris["html"]),
        "report_json": dg.MetadataValue.url(uris["json"]),
    }


def run_metadata(
    reports: Mapping[str, DriftSummary], uris: Mapping[str, Mapping[str, str]], ref: Reference
) -> dict[str, Any]:
    """What the run records: one month in full; a range as shares and drifted columns by month.

    A ranged run records one materialization per month with the same metadata, so only
    by-month values are true for each of them; every month's full summary is in the lake.
    """
    common = {
        "model_version": ref.version,
        "reference_months": dg.MetadataValue.json(list(ref.months)),
        "method": DEFAULTS,
    }
    if len(reports) == 1:
        ((month, summary),) = reports.items()
        return {"month": month, **month_metadata(summary, uris[month]), **common}
    return {
        "share_by_month": dg.MetadataValue.json({m: round(s.share, 4) for m, s in reports.items()}),
        "drifted_columns_by_month": dg.MetadataValue.json(
            {m: s.drifted_columns for m, s in reports.items()}
        ),
        "reports": dg.MetadataValue.json({m: u["html"] for m, u in uris.items()}),
        **common,
    }


def _champion(mlflow_res: MlflowResource) -> Champion:
    from onering_assets.ml.registry import load_champion

    champion = load_champion(mlflow_res)
    if champion is None:
        raise DriftInputError(
            f"no champion of {inputs.MODEL_NAME} in {mlflow_res.display_uri}: nothing was "
            f"trained and promoted, so there is no training reference; {TRAIN_HINT}."
        )
    return champion


def _training_set(lake: LakeResource) -> pd.DataFrame:
    from onering_assets.ml.training_set import read

    try:
        return read(lake)
    except FileNotFoundError:
        raise DriftInputError(
            "ml/training_set has not been materialized; run "
            "`onering materialize --select 'key:\"ml/training_set\"'` first."
        ) from None


def _body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator[Any]:
    lake: LakeResource = context.resources.lake
    months = selected_partitions(context) or []
    if not materialize:
        # Checks alone without partitions: every month that has a report.
        checked = months or report_months(lake)
        yield [share_outcome({m: read_summary(lake, m) for m in checked})]
        return
    mlflow_res: MlflowResource = context.resources.mlflow
    champion = _champion(mlflow_res)
    training_set = _training_set(lake)
    ref = reference(training_set, champion, train_months(mlflow_res, champion))
    reports: dict[str, DriftSummary] = {}
    uris: dict[str, dict[str, str]] = {}
    reused: list[str] = []
    for month in months:
        rows = month_rows(training_set, month)
        key = report_key(ref, rows)
        kept = read_summary(lake, month) if read_key(lake, month) == key else None
        if kept is not None:  # the same inputs, code and Evidently: the same report
            reports[month], uris[month] = kept, report_uris(lake, month)
            reused.append(month)
            continue
        report = build_report(ref.frame, scored(rows, champion))
        reports[month], uris[month] = report.summary, write_report(lake, month, report, key)
        summary = report.summary
        context.log.info(
            f"{month}: {len(summary.drifted_columns)} of {len(summary.columns)} columns drifted "
            f"against version {ref.version}'s training months {list(ref.months)}"
        )
    if reused:
        context.log.info(f"reused the reports of {', '.join(reused)}: their inputs are unchanged")
    yield [share_outcome(reports)]
    yield dg.MaterializeResult(
        metadata={
            **run_metadata(reports, uris, ref),
            "reused_months": dg.MetadataValue.json(reused),
        }
    )


def drift_spec() -> dg.AssetSpec:
    return dg.AssetSpec(
        key=DRIFT_KEY,
        description=(
            "Evidently drift report per month: the month's model inputs (features as of "
            "sched_dep_at - 2 h, from ml/training_set) and the champion's predicted "
            "probability, against the rows the champion was trained on. Saved to the lake "
            f"as ml/drift/<month>/report.html, report.json and summary.json. {DEFAULTS}"
        ),
        group_name=GROUP,
        owners=["team:ml"],
        tags={"layer": "ml", "store": "lake"},
        kinds={"evidently"},
        deps=[dg.AssetDep(TRAINING_SET_KEY), dg.AssetDep(MODEL_KEY)],
        partitions_def=MONTHLY,
        metadata={"lake_path": "ml/drift/<month>/", "method": DEFAULTS},
    )


def drift_defs() -> dg.Definitions:
    """The drift report asset and its check (resources: ``lake``, ``mlflow``)."""
    asset = build_table_asset(drift_spec(), DECLS, {"lake", "mlflow"}, _body)
    return dg.Definitions(assets=[asset])
