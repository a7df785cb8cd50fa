"""Drift reports: Evidently 0.7's ``DataDriftPreset`` with its default tests and thresholds.

Nothing here is tuned: the preset is built with no method, threshold or drift share, so
Evidently picks per column (``evidently.legacy.calculations.stattests.registry.
_get_default_stattest``), by the reference's size and the column's type:

- reference of more than 1,000 rows: a numerical column with more than 5 distinct values
  (reference and current together) gets the Wasserstein distance normed by the reference's
  standard deviation, drift when >= 0.1; a numerical column with at most 5 values, or a
  categorical one, gets the Jensen-Shannon distance, drift when >= 0.1;
- reference of at most 1,000 rows: numerical with more than 5 values the two-sample
  Kolmogorov-Smirnov test, drift when p < 0.05; categorical (or numerical with at most 5
  values) the chi-squared test, drift when p < 0.05, or with at most 2 values the
  two-proportion Z-test, drift when p < 0.05.

The dataset drifts when the share of drifted columns is >= 0.5 (``drift_share``; Evidently's
own test on it is "share < 0.5"). Nulls are left out of each column's test (Evidently drops
them). Evidently is imported inside :func:`build_report` (it takes seconds to import).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from onering_assets.errors import OneRingError
from onering_assets.ml.inputs import CATEGORICAL_COLUMNS, numeric_columns

if TYPE_CHECKING:
    import pandas as pd

# The model's output as the drift report compares it: P(late) per flight.
PREDICTION_COLUMN = "late_probability"
# Evidently's default share of drifted columns at which the dataset counts as drifted.
DEFAULT_DRIFT_SHARE = 0.5
DEFAULTS = (
    "Evidently 0.7 DataDriftPreset defaults, untuned: with a reference of more than 1,000 rows "
    "numerical columns (more than 5 values) are tested with the Wasserstein distance normed by "
    "the reference's standard deviation (drift at >= 0.1) and categorical columns (or "
    "numerical with at most 5 values) with the Jensen-Shannon distance (drift at >= 0.1); with "
    "at most 1,000 reference rows, Kolmogorov-Smirnov (numerical, drift at p < 0.05), "
    "chi-squared or, for two values, a Z-test (categorical, drift at p < 0.05). The dataset "
    "drifts when at least half of the columns drift (drift_share 0.5)."
)
_DRIFTED = "FAIL"  # Evidently's status of a column test that found drift


class DriftInputError(OneRingError):
    """The frames given to a drift report cannot be compared (says which column or frame)."""

    retryable = False


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test as Evidently ran it.

    Attributes:
        column: the column.
        kind: ``numerical`` or ``categorical`` (what the test was chosen for).
        test: Evidently's name of the test, e.g. ``Wasserstein distance (normed)``.
        score: the distance or p-value.
        threshold: the default threshold the score was compared with.
        drifted: what Evidently decided (a distance at or above, a p-value below it).
    """

    column: str
    kind: str
    test: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftSummary:
    """What a report found, in numbers small enough for asset metadata."""

    columns: tuple[ColumnDrift, ...]
    reference_rows: int
    current_rows: int
    drift_share: float = DEFAULT_DRIFT_SHARE

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        """Share of the tested columns that drifted (0 when none was tested)."""
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        """Evidently's dataset-level verdict: ``share >= drift_share``."""
        return bool(self.columns) and self.share >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        return {
            "share_of_drifted_columns": round(self.share, 4),
            "drifted_columns": self.drifted_columns,
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [asdict(c) for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSummary:
        """Read back what :meth:`to_dict` wrote (e.g. ``summary.json`` from the lake)."""
        return cls(
            columns=tuple(ColumnDrift(**c) for c in data["columns"]),
            reference_rows=int(data["reference_rows"]),
            current_rows=int(data["current_rows"]),
            drift_share=float(data.get("drift_share", DEFAULT_DRIFT_SHARE)),
        )


@dataclass(frozen=True)
class DriftReport:
    """A report: the summary, Evidently's HTML page and its snapshot as JSON."""

    summary: DriftSummary
    html: str
    snapshot_json: str


def drift_columns(with_prediction: bool = True) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(numerical, categorical)``: the model's inputs (contract 2), and the prediction.

    The predicted probability is compared too when ``with_prediction``.
    """
    numerical = numeric_columns() + ((PREDICTION_COLUMN,) if with_prediction else ())
    return numerical, CATEGORICAL_COLUMNS


def _frame(
    data: pd.DataFrame, numerical: Sequence[str], categorical: Sequence[str], name: str
) -> pd.DataFrame:
    """The compared columns only: numbers as float64 (nulls NaN), codes as strings."""
    import pandas as pd

    missing = [c for c in (*numerical, *categorical) if c not in data.columns]
    if missing:
        raise DriftInputError(f"the {name} frame lacks column(s): {', '.join(missing)}.")
    if data.empty:
        raise DriftInputError(f"the {name} frame has no rows: nothing to compare.")
    out = pd.DataFrame(index=data.index)
    for column in numerical:
        try:
            out[column] = pd.Series(pd.to_numeric(data[column]), dtype="float64")
        except (TypeError, ValueError) as err:
            raise DriftInputError(f"the {name} frame's {column} is not numeric: {err}") from None
    for column in categorical:
        values = data[column]
        out[column] = values.where(values.isna(), values.astype(str))
    return out.reset_index(drop=True)


def _require_values(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> None:
    """Every column has a value on both sides: an all-null column has no distribution."""
    empty = [c for c in columns if bool(reference[c].isna().all()) or bool(current[c].isna().all())]
    if empty:
        raise DriftInputError(
            f"column(s) {', '.join(empty)} are null in every row of the reference or the "
            "current frame: there is no distribution to compare (are the features materialized?)."
        )


def build_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column with Evidently's defaults.

    Args:
        reference: what the model was trained on (or any baseline).
        current: the period to check.
        numerical: numerical columns (default: the model's numeric inputs and the prediction).
        categorical: categorical columns (default: carrier, origin, dest).

    Raises:
        DriftInputError: a frame is empty, lacks a column, has a non-numeric value in a
            numerical column, or a column is null in every row of one frame.
    """
    default_num, default_cat = drift_columns()
    numerical = list(default_num if numerical is None else numerical)
    categorical = list(default_cat if categorical is None else categorical)
    ref = _frame(reference, numerical, categorical, "reference")
    cur = _frame(current, numerical, categorical, "current")
    _require_values(ref, cur, [*numerical, *categorical])

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    report = Report([DataDriftPreset()], include_tests=True)
    with warnings.catch_warnings():
        # Evidently correlates the numerical columns for its page; a constant column makes
        # numpy warn about dividing by a zero deviation. The drift tests are unaffected.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        html = snapshot.get_html_str(as_iframe=False)
    data = snapshot.dict()
    summary = summarize(data, set(categorical), len(ref), len(cur))
    return DriftReport(summary=summary, html=html, snapshot_json=json.dumps(data, default=str))


def summarize(
    snapshot: dict[str, Any], categorical: set[str], reference_rows: int, current_rows: int
) -> DriftSummary:
    """Each column's test, score, threshold and verdict from an Evidently snapshot's dict."""
    verdicts = {
        t["metric_config"]["metric_id"]: t["status"] == _DRIFTED
        for t in snapshot.get("tests", [])
        if t.get("id") == "drift"
    }
    columns, drift_share = [], DEFAULT_DRIFT_SHARE
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":DriftedColumnsCount"):
            drift_share = float(config.get("drift_share", DEFAULT_DRIFT_SHARE))
        if not config["type"].endswith(":ValueDrift"):
            continue
        column = config["column"]
        columns.append(
            ColumnDrift(
                column=column,
                kind="categorical" if column in categorical else "numerical",
                test=str(config["method"]),
                score=float(metric["value"]),
                threshold=float(config["threshold"]),
                drifted=verdicts[metric["id"]],
            )
        )
    return DriftSummary(tuple(columns), reference_rows, current_rows, drift_share)
