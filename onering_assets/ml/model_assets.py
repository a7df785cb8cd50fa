"""ML assets: ``ml/training_set`` and ``ml/flight_late_arrival``, each with its checks.

- ``ml/training_set``: labelled flights from Silver with their features from Feast's
  historical retrieval as of ``sched_dep_at - 2 h``; audited (no feature from the future,
  labels and coverage), then written to the lake (``ml/training_set/data.parquet``).
- ``ml/flight_late_arrival``: the Spark ML model trained on it with a time split, logged to
  MLflow with its ONNX form and registered; the gate's four checks decide whether the new
  version becomes ``champion``. A refused version stays registered (tagged refused, with
  the reasons) and the step fails saying why; the champion does not move. When the champion
  was trained on the same training set, config and code (its run's fingerprint), the step
  reuses it without starting Spark; when the newest version with that fingerprint was
  refused, it fails the same way without training (``ModelConfig.force`` trains anyway).

Selecting only the checks audits what is published: the training set in the lake, or the
current champion's logged metrics against the gate's thresholds. Nothing heavy (Feast,
MLflow, pyspark) is imported until a step runs.
"""

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from onering_assets.checks.outcome import Outcome, failures_message, not_published
from onering_assets.checks.specs import blocking_failures, emit, to_specs
from onering_assets.factory import build_table_asset
from onering_assets.ml import gate, inputs, promote, registry, training_set
from onering_assets.ml.training import TrainSpec, month_range
from onering_assets.resources.lake import LakeResource
from onering_assets.resources.mlflow import MlflowResource

GROUP = "ml"
OWNERS = ["team:ml"]
TRAINING_SET = dg.AssetKey([GROUP, training_set.TABLE])
MODEL = dg.AssetKey([GROUP, inputs.MODEL_NAME])
# The views' assets (``onering_assets.features``): one per view in views.yml.
FEATURE_GROUP = "features"


def feature_view_keys() -> list[dg.AssetKey]:
    """``features/<view>`` for every view the model's features come from."""
    views = dict.fromkeys(ref.view for ref in inputs.feature_refs())
    return [dg.AssetKey([FEATURE_GROUP, view]) for view in views]


def _views() -> list[training_set.ViewSpec]:
    from onering_assets.features.views import load_views

    return [training_set.ViewSpec(v.name, v.join_keys, v.feature_names) for v in load_views().views]


def _offline_rows(lake: LakeResource) -> dict[str, Any]:
    from onering_assets.features import steps
    from onering_assets.features.views import load_views

    return {v.name: steps.read(lake, v).to_pandas() for v in load_views().views}


def training_set_schema() -> dg.TableSchema:
    """The training set's columns: the flight, its label, derived fields and features."""
    columns = [
        dg.TableColumn("flight_date", "Date", description="Scheduled departure date (local)."),
        dg.TableColumn("carrier", "String"),
        dg.TableColumn("flight", "UInt32"),
        dg.TableColumn("origin", "String"),
        dg.TableColumn("dest", "String"),
        dg.TableColumn("sched_dep_at", "DateTime('America/New_York')"),
        dg.TableColumn("arr_delay", "Int32", description="Minutes; never null here."),
        dg.TableColumn("dep_hour", "Int32", description="0-23, New York time."),
        dg.TableColumn("day_of_week", "Int32", description="1 = Monday … 7 = Sunday."),
        dg.TableColumn(
            inputs.EVENT_TIMESTAMP, "DateTime('UTC')", description="sched_dep_at - 2 h."
        ),
        dg.TableColumn(inputs.LABEL, "Int8", description="arr_delay > 15."),
    ]
    columns += [
        dg.TableColumn(r.name, r.dtype, description=f"Feast feature {r.ref}, as of the prediction.")
        for r in inputs.feature_refs()
    ]
    return dg.TableSchema(columns=columns)


def training_set_spec() -> dg.AssetSpec:
    return dg.AssetSpec(
        key=TRAINING_SET,
        description=(
            "Labelled flights (late = arr_delay > 15; cancelled and diverted flights have no "
            "label) with every feature of views.yml from Feast's historical retrieval as of "
            "two hours before the scheduled departure. Parquet in the lake: "
            "ml/training_set/data.parquet."
        ),
        group_name=GROUP,
        owners=OWNERS,
        tags={"layer": GROUP, "store": "lake"},
        kinds={"parquet", "feast"},
        deps=[dg.AssetDep(dg.AssetKey(["silver", "flights"])), *feature_view_keys()],
        metadata={
            "dagster/column_schema": training_set_schema(),
            "lake_path": f"{training_set.LAYER}/{training_set.TABLE}/data.parquet",
            "label": "late = arr_delay > 15",
            "prediction_time": "sched_dep_at - 2 h (UTC)",
            "feature_refs": dg.MetadataValue.json([r.ref for r in inputs.feature_refs()]),
        },
    )


def build_training_set_asset() -> dg.AssetsDefinition:
    """``ml/training_set``: retrieve, audit, then write (nothing is written on a failure)."""
    decls = training_set.DECLS

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator[Any]:
        lake: LakeResource = context.resources.lake
        if not materialize:
            if not lake.exists(training_set.LAYER, training_set.TABLE):
                yield not_published([d.name for d in decls], TRAINING_SET.to_user_string())
                return
            frame = training_set.read(lake)
            yield _audit(frame, lake)
            return
        from onering_assets.features.retrieval import historical_features

        started = time.perf_counter()
        flights = training_set.labelled_flights(context.resources.clickhouse.get_client())
        # The run's own store (the feast resource); settings only pick a store when none
        # is given, and a run has resources, not settings.
        store = context.resources.feast.store()
        frame = historical_features(None, flights, store=store)
        retrieved = time.perf_counter() - started
        context.log.info(f"retrieved features for {len(frame)} flights in {retrieved:.1f} s")
        outcomes = _audit(frame, lake)
        yield outcomes
        path = training_set.write(lake, frame)
        yield dg.MaterializeResult(
            metadata={
                "rows": len(frame),
                "dagster/row_count": len(frame),
                "path": path,
                "retrieval_seconds": round(retrieved, 3),
                "seconds": round(time.perf_counter() - started, 3),
                **outcomes[1].metadata,
            }
        )

    return build_table_asset(training_set_spec(), decls, {"clickhouse", "lake", "feast"}, body)


def _audit(frame: Any, lake: LakeResource) -> list[Outcome]:
    return [
        training_set.future_features(frame, _views(), _offline_rows(lake)),
        training_set.coverage(frame),
    ]


class ModelConfig(dg.Config):
    """How to train and gate ``flight_late_arrival`` (defaults: the full year 2013)."""

    train_months: str = Field(default="1-9", description="Months trained on, e.g. 1-9.")
    test_months: str = Field(default="10-12", description="Held-out months, after train.")
    max_iter: int = Field(default=100, ge=1, description="LogisticRegression maxIter.")
    reg_param: float = Field(default=0.0, ge=0, description="LogisticRegression regParam.")
    elastic_net_param: float = Field(default=0.0, ge=0, le=1, description="0 = L2, 1 = L1.")
    auc_floor: float = Field(
        default=gate.DEFAULT_GATE.auc_floor, ge=0.5, le=1, description="Test AUC floor."
    )
    onnx_tolerance: float = Field(
        default=gate.DEFAULT_GATE.onnx_tolerance,
        ge=0,
        le=0.01,
        description="ONNX vs Spark max abs diff.",
    )
    champion_tolerance: float = Field(
        default=gate.DEFAULT_GATE.champion_tolerance,
        ge=0,
        le=0.1,
        description="How far below the champion's AUC a new model may be.",
    )
    allow_incomparable_champion: bool = Field(
        default=False,
        description=(
            "Promote on the other checks when the champion cannot be scored on held-out "
            "flights it never trained on (it trained on every test month, or needs inputs "
            "the training set lacks); by default that refuses."
        ),
    )
    force: bool = Field(
        default=False,
        description=(
            "Train even when the champion, or the newest refused version, was trained on "
            "this exact training set, config and code."
        ),
    )

    def spec(self) -> TrainSpec:
        params = {
            "maxIter": self.max_iter,
            "regParam": self.reg_param,
            "elasticNetParam": self.elastic_net_param,
        }
        return TrainSpec(month_range(self.train_months), month_range(self.test_months), params)

    def gate_config(self) -> gate.GateConfig:
        return gate.GateConfig(
            self.auc_floor,
            self.onnx_tolerance,
            self.champion_tolerance,
            self.allow_incomparable_champion,
        )


def model_spec() -> dg.AssetSpec:
    return dg.AssetSpec(
        key=MODEL,
        description=(
            "Will a flight arrive more than 15 minutes late? A Spark ML pipeline (StringIndexer "
            "→ OneHotEncoder → VectorAssembler → LogisticRegression) trained with a time split, "
            "registered in MLflow as flight_late_arrival with its ONNX serving form; its "
            "materialization is the version that passed the gate and holds the alias champion."
        ),
        group_name=GROUP,
        owners=OWNERS,
        tags={"layer": GROUP, "store": "mlflow"},
        kinds={"spark", "mlflow", "onnx"},
        deps=[dg.AssetDep(TRAINING_SET)],
        metadata={
            "registered_model": inputs.MODEL_NAME,
            "alias": registry.CHAMPION_ALIAS,
            "model_inputs": dg.MetadataValue.json(inputs.onnx_inputs()),
            "feature_refs": dg.MetadataValue.json([r.ref for r in inputs.feature_refs()]),
        },
    )


def build_model_asset() -> dg.AssetsDefinition:
    """``ml/flight_late_arrival``: train, log, register, gate, promote (see the module doc)."""
    decls = gate.gate_decls()

    @dg.multi_asset(
        name="ml__flight_late_arrival",
        specs=[model_spec()],
        check_specs=to_specs(MODEL, decls),
        can_subset=True,
        required_resource_keys={"lake", "spark", "mlflow"},
        op_tags={"onering/layer": GROUP},
    )
    def _asset(context: dg.AssetExecutionContext, config: ModelConfig) -> Iterator[Any]:
        if MODEL not in context.selected_asset_keys:
            yield from emit(context, MODEL, decls, audit_champion(context, config))
            return
        lake: LakeResource = context.resources.lake
        if not lake.exists(training_set.LAYER, training_set.TABLE):
            raise dg.Failure(
                f"{MODEL.to_user_string()}: no training set yet; materialize "
                f"{TRAINING_SET.to_user_string()} first.",
                allow_retries=False,
            )
        result = _reuse_or_train(context, config, lake)
        yield from emit(context, MODEL, decls, result.outcomes)
        failures = blocking_failures(decls, result.outcomes)
        if failures or not result.promoted:
            raise dg.Failure(
                description=(
                    f"{MODEL.to_user_string()}: {result.refusal(len(failures))}\n"
                    f"{failures_message(failures)}"
                ),
                metadata={"failed_checks": [o.name for o in failures], **result.metadata},
                allow_retries=False,
            )
        yield dg.MaterializeResult(metadata=result.metadata)

    return _asset


def _reuse_or_train(
    context: dg.AssetExecutionContext, config: ModelConfig, lake: LakeResource
) -> promote.GateResult:
    """A prior verdict on the same fingerprint (no Spark), or a new version trained."""
    started = time.perf_counter()
    spec, gate_config = config.spec(), config.gate_config()
    mlflow_res: MlflowResource = context.resources.mlflow
    frame = training_set.read(lake)
    fp = promote.fingerprint(frame, spec, gate_config)
    if config.force:
        decision = promote.Decision("forced by the run config (force: true)", None)
    else:
        decision = promote.decide(mlflow_res, fp)
    if decision.prior is not None:
        context.log.info(f"not training: {decision.why} (fingerprint {fp.digest[:12]})")
        return promote.replay(mlflow_res, decision, fp, gate_config, started=started)
    context.log.info(f"training: {decision.why}")
    return promote.train_and_gate(
        frame,
        context.resources.spark.session(),
        mlflow_res,
        spec,
        gate_config,
        tags={
            "onering.training_set": lake.uri(training_set.LAYER, training_set.TABLE),
            "onering.dagster_run_id": context.run.run_id,
        },
        fp=fp,
        why=decision.why,
        log=context.log.info,
        locks=lake.locks(),
    )


def audit_champion(context: dg.AssetExecutionContext, config: ModelConfig) -> list[Outcome]:
    """Checks alone: the current champion's logged metrics against the gate's thresholds."""
    mlflow_res: MlflowResource = context.resources.mlflow
    version = registry.champion_version(mlflow_res)
    if version is None:
        return not_published([d.name for d in gate.gate_decls()], f"{inputs.MODEL_NAME} champion")
    return gate.audit_logged(mlflow_res, version, config.gate_config())


def model_defs() -> dg.Definitions:
    """The training set and the model.

    They need the ``clickhouse``, ``lake``, ``feast``, ``spark`` and ``mlflow`` resources.
    """
    return dg.Definitions(assets=[build_training_set_asset(), build_model_asset()])
