"""Training as plain steps: split in time, fit the Spark job, score, convert to ONNX.

Called by the ``ml/flight_late_arrival`` asset, by ``platform/ml/training/job.py`` under
``spark-submit`` and by the benchmark alike. The Spark job itself (the pipeline) lives in
``platform/ml/training/job.py`` and is loaded by path (:func:`load_job`).
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from onering_assets.errors import ConfigError
from onering_assets.ml import inputs
from onering_assets.settings import PLATFORM_DIR

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from onnx import ModelProto
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

JOB_FILE = PLATFORM_DIR / "ml" / "training" / "job.py"
BASELINE_SCORE = "carrier_late_rate_28d"
PROBABILITY_OUTPUT = "probability"


def month_range(text: str) -> tuple[int, ...]:
    """``"1-9"`` → (1, …, 9); ``"2"`` → (2,); ``"1,3"`` → (1, 3).

    Raises:
        ConfigError: not months 1-12.
    """
    months: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            months += range(int(first), int(last or first) + 1)
    except ValueError:
        months = [0]
    if not months or not all(1 <= m <= 12 for m in months):
        raise ConfigError(f"{text!r} is not a month range such as 1-9 or 2 (months 1-12).")
    return tuple(months)


@dataclass(frozen=True)
class TrainSpec:
    """What to train on: months of the scheduled departure (New York) and the LR's params.

    Attributes:
        train_months: months whose flights are trained on (default January–September).
        test_months: months whose flights are held out for every metric and gate check
            (default October–December). The split is in time, so no test flight's features
            overlap a training flight's labels.
        params: LogisticRegression parameters (``maxIter``, ``regParam``, ``elasticNetParam``).
    """

    train_months: tuple[int, ...] = tuple(range(1, 10))
    test_months: tuple[int, ...] = (10, 11, 12)
    params: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raises ConfigError: the months overlap or a test month precedes a train month."""
        overlap = sorted(set(self.train_months) & set(self.test_months))
        if overlap:
            raise ConfigError(f"train and test months overlap: {overlap}.")
        if min(self.test_months) < max(self.train_months):
            raise ConfigError(
                "test months must follow the train months (a time split): "
                f"train {list(self.train_months)}, test {list(self.test_months)}."
            )


@functools.cache
def load_job(path: Path = JOB_FILE) -> ModuleType:
    """``platform/ml/training/job.py`` as a module (``platform`` is not importable)."""
    spec = importlib.util.spec_from_file_location("onering_training_job", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load the Spark training job from {path}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split(frame: pd.DataFrame, spec: TrainSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test flights by the month of their scheduled departure (New York).

    Raises:
        ConfigError: either side is empty or holds only one class.
    """
    spec.validate()
    import pandas as pd

    month = pd.Series(frame["sched_dep_at"]).dt.tz_convert(inputs.TIMEZONE).dt.month
    parts = []
    for name, months in (("train", spec.train_months), ("test", spec.test_months)):
        part = pd.DataFrame(frame.loc[month.isin(months)]).reset_index(drop=True)
        classes = pd.Series(part[inputs.LABEL]).nunique()
        if classes < 2:
            raise ConfigError(
                f"the {name} months {list(months)} hold {len(part)} labelled flights with "
                f"{classes} class(es); materialize ml/training_set with those months landed, "
                "or set train_months/test_months (ml/flight_late_arrival's run config) to "
                "months that have both late and on-time flights."
            )
        parts.append(part)
    return parts[0], parts[1]


def auc(labels: np.ndarray | pd.Series, scores: np.ndarray | pd.Series) -> float:
    """Area under the ROC curve (scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def onnx_probabilities(
    model: bytes, frame: pd.DataFrame, onnx_inputs: Sequence[Mapping[str, str]]
) -> np.ndarray:
    """P(late) from an ONNX form for each row of ``frame`` (its model columns, filled)."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = {
        i["name"]: frame[[i["name"]]].to_numpy(
            dtype=object if i["type"] == "string" else np.float32
        )
        for i in onnx_inputs
    }
    (probability,) = session.run([PROBABILITY_OUTPUT], feed)
    return np.asarray(probability, dtype="float64")[:, 1]


@dataclass
class TrainedModel:
    """A fitted model, its ONNX form, and what was measured on the test months.

    Attributes:
        test_rows: the test flights as in the training set (features unfilled).
        test: their model inputs (filled with ``fill_values``) and label.
        spark_probs / onnx_probs: P(late) for each test flight from either form.
        metrics: rows, late rates, AUCs, the baseline's AUC and the ONNX max abs difference.
        seconds: wall time of each step.
    """

    spark_model: PipelineModel
    onnx: ModelProto
    spec: TrainSpec
    fill_values: dict[str, float]
    onnx_inputs: list[dict[str, str]]
    test_rows: pd.DataFrame
    test: pd.DataFrame
    spark_probs: np.ndarray
    onnx_probs: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def onnx_bytes(self) -> bytes:
        return self.onnx.SerializeToString()


def _prepared(frame: pd.DataFrame, fills: Mapping[str, float]) -> pd.DataFrame:
    prepared = inputs.model_frame(frame, fills)
    prepared[inputs.LABEL] = frame[inputs.LABEL].astype("float64").to_numpy()
    return prepared


def train(spark: SparkSession, frame: pd.DataFrame, spec: TrainSpec) -> TrainedModel:
    """Split, fit on the train months, score the test months with Spark and with ONNX.

    ``frame`` is the training set (``ml/training_set``): flights with ``sched_dep_at``
    (tz-aware), the label and every feature column. Fill values are the train months'
    medians, so nothing from the test months leaks into the model.
    """
    job = load_job()
    train_rows, test_rows = split(frame, spec)
    fills = inputs.fill_values(train_rows)
    train_set, test_set = _prepared(train_rows, fills), _prepared(test_rows, fills)
    categorical, numeric = list(inputs.CATEGORICAL_COLUMNS), list(inputs.numeric_columns())
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    model = job.fit(spark, train_set, categorical, numeric, inputs.LABEL, dict(spec.params))
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    spark_probs = job.probabilities(spark, model, test_set)
    seconds["spark_predict"] = time.perf_counter() - started
    onnx_inputs = inputs.onnx_inputs()
    started = time.perf_counter()
    onnx = job.to_onnx(spark, model, onnx_inputs, inputs.MODEL_NAME)
    seconds["onnx_convert"] = time.perf_counter() - started
    started = time.perf_counter()
    onnx_probs = onnx_probabilities(onnx.SerializeToString(), test_set, onnx_inputs)
    seconds["onnx_predict"] = time.perf_counter() - started
    labels = test_set[inputs.LABEL].to_numpy()
    metrics = {
        "train_rows": float(len(train_set)),
        "test_rows": float(len(test_set)),
        "train_late_rate": float(train_set[inputs.LABEL].mean()),
        "test_late_rate": float(labels.mean()),
        "test_auc": auc(labels, spark_probs),
        "onnx_test_auc": auc(labels, onnx_probs),
        "baseline_auc": auc(labels, test_set[BASELINE_SCORE].to_numpy()),
        "onnx_max_abs_diff": float(abs(spark_probs - onnx_probs).max()),
        "iterations": float(model.stages[-1].summary.totalIterations),
    }
    return TrainedModel(
        spark_model=model,
        onnx=onnx,
        spec=spec,
        fill_values=fills,
        onnx_inputs=onnx_inputs,
        test_rows=test_rows,
        test=test_set,
        spark_probs=spark_probs,
        onnx_probs=onnx_probs,
        metrics=metrics,
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )
