"""The Dagster code location: composes each layer's defs() and picks resources by profile."""

from __future__ import annotations

import dagster as dg

from onering_assets import airbyte, bronze, features, gold, silver, stream
from onering_assets.airbyte.assets import airbyte_resource
from onering_assets.lineage.sensor import catalog_sensors
from onering_assets.ml.drift_assets import drift_defs
from onering_assets.ml.model_assets import model_defs
from onering_assets.progress import progress_logger
from onering_assets.resources import (
    ClickHouseResource,
    LakeResource,
    PostgresResource,
    SourceResource,
)
from onering_assets.resources.feast import feast_resource
from onering_assets.resources.mlflow import mlflow_resource
from onering_assets.resources.spark import spark_resource
from onering_assets.settings import Settings
from onering_assets.stream.flink_resource import flink_resource
from onering_assets.stream.resource import pulsar_resource


def resources_for(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Embedded stores under the state folder (local) or the compose servers (via EnvVar).

    ``gold_reader`` is the read-only ``onering_reader`` role on Gold (`onering sql`). Feast,
    Spark and MLflow resources import their libraries only when a step opens them.
    """
    return {
        **_stores(settings),
        **_ml(settings),
        "pulsar": pulsar_resource(settings),
        "flink": flink_resource(settings),
        "airbyte": airbyte_resource(),
    }


def _ml(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "feast": feast_resource(settings),
        "spark": spark_resource(settings),
        "mlflow": mlflow_resource(settings),
    }


def _stores(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    source = SourceResource(
        path=str(settings.source_dir) if settings.source_dir else None,
        engine=settings.bronze_engine,
        chunk_bytes=settings.bronze_chunk_bytes,
    )
    if settings.profile == "local":
        return {
            "source": source,
            "lake": LakeResource(
                url=settings.lake_dir.as_uri(), lock_timeout_s=settings.lock_timeout_s
            ),
            "clickhouse": ClickHouseResource(
                dsn=f"chdb://{settings.clickhouse_dir}", lock_timeout_s=settings.lock_timeout_s
            ),
            "postgres": PostgresResource(embedded_dir=str(settings.postgres_dir)),
            "gold_reader": PostgresResource(embedded_dir=str(settings.postgres_dir), role="reader"),
        }
    return {
        "source": source,
        "lake": LakeResource(
            url=dg.EnvVar("ONERING_LAKE_URL"),
            s3_endpoint_url=dg.EnvVar("ONERING_S3_ENDPOINT_URL"),
            clickhouse_s3_endpoint_url=dg.EnvVar("ONERING_CLICKHOUSE_S3_ENDPOINT_URL"),
            aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
            # Publication locks: Postgres advisory locks, which every host reaches.
            lock_dsn=dg.EnvVar("ONERING_POSTGRES_DSN"),
        ),
        "clickhouse": ClickHouseResource(
            dsn=dg.EnvVar("ONERING_CLICKHOUSE_DSN"), lock_dsn=dg.EnvVar("ONERING_POSTGRES_DSN")
        ),
        "postgres": PostgresResource(dsn=dg.EnvVar("ONERING_POSTGRES_DSN")),
        # No asset requires it, so runs never read the variable; `onering sql` and BI do.
        "gold_reader": PostgresResource(
            dsn=dg.EnvVar("ONERING_POSTGRES_READER_DSN"), role="reader"
        ),
    }


def build_definitions(
    settings: Settings | None = None, resources: dict[str, dg.ConfigurableResource] | None = None
) -> dg.Definitions:
    """All layers, the profile's resources, and an executor that respects chDB's one owner."""
    settings = settings or Settings.from_env()
    # chDB opens its data directory in one process at a time, so local runs execute their
    # steps in-process; against servers the default multiprocess executor is safe.
    executor = dg.in_process_executor if settings.profile == "local" else dg.multiprocess_executor
    return dg.Definitions.merge(
        bronze.defs(),
        silver.defs(),
        gold.defs(),
        stream.defs(),
        airbyte.defs(),
        features.defs(),
        model_defs(),
        drift_defs(),
        dg.Definitions(
            resources={**resources_for(settings), **(resources or {})},
            executor=executor,
            sensors=catalog_sensors(settings),  # runs launched elsewhere reach the catalog
            loggers={"console": dg.colored_console_logger, "onering_progress": progress_logger},
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
