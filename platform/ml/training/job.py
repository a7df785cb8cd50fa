"""The Spark ML training job for ``flight_late_arrival``.

The pipeline is StringIndexer → OneHotEncoder → VectorAssembler → LogisticRegression: the
categorical request fields are indexed and one-hot encoded, then assembled with the float
inputs. LogisticRegression because its ONNX form reproduces Spark's probabilities exactly
(to ~1e-7), where a GBT's differs by up to 0.04 (docs: DESIGN.md). The indexer keeps unseen
codes (``handleInvalid="keep"``) and the encoder uses ``handleInvalid="keep",
dropLast=True``: the only setting ``onnxmltools`` converts faithfully (an unseen code becomes
all zeros in both forms; its column never occurs in training, so its weight is 0).

This file lives in ``platform/ml/training/`` (the stdlib owns the name ``platform``, so it is
not importable as a package): ``onering_assets.ml.training`` loads it by path, and
``spark-submit`` runs it as a script (see :func:`main`), e.g. against a ``spark://`` master::

    spark-submit --master spark://host:7077 platform/ml/training/job.py \
        --training-set /path/training_set.parquet --out /tmp/model

Only JVM stages run on the executors (no Python UDFs), so they need no Python packages.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from onnx import ModelProto
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.sql import DataFrame, SparkSession

FEATURES = "features"
PROBABILITY = "probability"
ONNX_OPSET = 15
DEFAULT_PARAMS: dict[str, Any] = {"maxIter": 100, "regParam": 0.0, "elasticNetParam": 0.0}


def build_pipeline(
    categorical: Sequence[str],
    numeric: Sequence[str],
    label: str,
    params: Mapping[str, Any] | None = None,
) -> Pipeline:
    """The unfitted pipeline; ``params`` are LogisticRegression's (``maxIter``, ``regParam``…)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    indexed = [f"{c}__index" for c in categorical]
    encoded = [f"{c}__onehot" for c in categorical]
    return Pipeline(
        stages=[
            StringIndexer(inputCols=list(categorical), outputCols=indexed, handleInvalid="keep"),
            OneHotEncoder(
                inputCols=indexed, outputCols=encoded, handleInvalid="keep", dropLast=True
            ),
            VectorAssembler(inputCols=encoded + list(numeric), outputCol=FEATURES),
            LogisticRegression(
                featuresCol=FEATURES,
                labelCol=label,
                probabilityCol=PROBABILITY,
                **{**DEFAULT_PARAMS, **(params or {})},
            ),
        ]
    )


def to_spark(spark: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """A pandas frame as a cached Spark DataFrame (through Arrow when it is enabled).

    Cached because the fit passes over it once per iteration: uncached, each pass would
    re-read the pandas data (measured: 6× slower).
    """
    data = spark.createDataFrame(frame).cache()
    data.count()
    return data


def fit(
    spark: SparkSession,
    frame: pd.DataFrame,
    categorical: Sequence[str],
    numeric: Sequence[str],
    label: str,
    params: Mapping[str, Any] | None = None,
) -> PipelineModel:
    """Fit the pipeline on ``frame`` (model inputs, nulls already filled, and the label)."""
    data = to_spark(spark, frame.loc[:, [*categorical, *numeric, label]])
    try:
        return build_pipeline(categorical, numeric, label, params).fit(data)
    finally:
        data.unpersist()


def probabilities(spark: SparkSession, model: PipelineModel, frame: pd.DataFrame) -> np.ndarray:
    """Spark's P(late) for every row of ``frame``, in the frame's order."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql.functions import col

    data = spark.createDataFrame(frame.assign(__row=range(len(frame))))
    scored = model.transform(data).select("__row", vector_to_array(col(PROBABILITY))[1].alias("p"))
    result = scored.toPandas().sort_values("__row")
    return result["p"].to_numpy(dtype="float64")


def to_onnx(
    spark: SparkSession, model: PipelineModel, inputs: Sequence[Mapping[str, str]], name: str
) -> ModelProto:
    """The same fitted pipeline as ONNX: one ``[N, 1]`` input per column, in order.

    ``inputs`` are ``{"name", "type": "string" | "float"}``; the outputs are ``label`` and
    ``probability`` (``[N, 2]``: P(not late), P(late)).
    """
    from onnxmltools import convert_sparkml
    from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType

    types = {"string": StringTensorType, "float": FloatTensorType}
    initial = [(i["name"], types[i["type"]]([None, 1])) for i in inputs]
    # The LogisticRegression converter pprints its coefficients to stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        return convert_sparkml(model, name, initial, spark_session=spark, target_opset=ONNX_OPSET)


def main(argv: Sequence[str] | None = None) -> int:
    """``spark-submit job.py --training-set F --out DIR``: train, save both forms, print metrics.

    The split and metrics are ``onering_assets.ml.training``'s, so a cluster run trains
    exactly what the ``ml/flight_late_arrival`` asset trains.
    """
    parser = argparse.ArgumentParser(description="Train flight_late_arrival with Spark ML.")
    parser.add_argument("--training-set", required=True, help="the training set's Parquet file")
    parser.add_argument("--out", required=True, help="folder for spark_model/ and model.onnx")
    parser.add_argument("--train-months", default="1-9", help="e.g. 1-9 or 1")
    parser.add_argument("--test-months", default="10-12", help="e.g. 10-12 or 2")
    args = parser.parse_args(argv)

    import pandas as pd
    from pyspark.sql import SparkSession

    from onering_assets.ml.training import TrainSpec, month_range, train

    spark = SparkSession.builder.appName("flight_late_arrival").getOrCreate()
    spec = TrainSpec(
        train_months=month_range(args.train_months), test_months=month_range(args.test_months)
    )
    trained = train(spark, pd.read_parquet(args.training_set), spec)
    trained.spark_model.write().overwrite().save(f"{args.out}/spark_model")
    Path(args.out, "model.onnx").write_bytes(trained.onnx.SerializeToString())
    json.dump(trained.metrics, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
