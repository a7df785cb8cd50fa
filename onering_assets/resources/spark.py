"""Spark for training: ``local[*]`` in this process locally, a ``spark://`` master in compose.

The session comes from dagster-pyspark (``LazyPySparkResource``: created on first use, not
when a run starts). dagster-pyspark imports pyspark when it is imported, and pyspark must
stay out of definitions load (the import bar), so this resource holds only configuration
and builds dagster-pyspark's resource inside :meth:`SparkResource.session`.

The session is kept for the life of the process (a JVM takes 5-15 s to start) and shared:
Spark has one active session per process, so a second resource with another master gets
the running one (:meth:`session` says so instead of silently training elsewhere).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from onering_assets.errors import ConfigError
from onering_assets.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPARK_MASTER_ENV = "ONERING_SPARK_MASTER"
# Arrow moves pandas frames to the JVM in columns (createDataFrame / toPandas); no UI or
# console progress bars from a library; few shuffle partitions for frames of ~10^5 rows.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
}
# Locally the driver listens on loopback only (not the host's public address).
LOCAL_CONF: dict[str, str] = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


class SparkResource(dg.ConfigurableResource):
    """A SparkSession through dagster-pyspark.

    Attributes:
        master: ``local[*]`` (in-process) or ``spark://host:7077`` (``ONERING_SPARK_MASTER``
            in compose).
        app_name: the application's name in the Spark UI.
        conf: extra Spark settings, over :data:`DEFAULT_CONF`.
        log_level: the JVM's log level once started (Spark's own WARN prints a line per
            harmless condition).
        driver_host: the name executors reach the driver by (``ONERING_SPARK_DRIVER_HOST``,
            e.g. ``host.docker.internal`` for compose's worker); the driver then listens on
            every interface. Empty: loopback for a local or loopback master.
        scratch_dir: where Bronze unpacks a ``.zip`` for Spark to read
            (``ONERING_SPARK_SCRATCH_DIR``): executors elsewhere must see it at the same
            path. Empty: the system's temp folder.
    """

    master: str = "local[*]"
    app_name: str = "onering-training"
    conf: dict[str, str] = Field(default_factory=dict)
    log_level: str = "ERROR"
    driver_host: str = ""
    scratch_dir: str = ""

    def spark_config(self) -> dict[str, Any]:
        """Every Spark setting the session is built with."""
        # On this machine (local[*], or a cluster on loopback) the driver listens on loopback,
        # unless executors elsewhere (containers) reach it by another name.
        local = self.master.startswith(("local", "spark://127.0.0.1:", "spark://localhost:"))
        driver = LOCAL_CONF if local and not self.driver_host else {}
        if self.driver_host:
            driver = {"spark.driver.host": self.driver_host, "spark.driver.bindAddress": "0.0.0.0"}
        return {
            "spark.master": self.master,
            "spark.app.name": self.app_name,
            **DEFAULT_CONF,
            **driver,
            **self.conf,
        }

    def session(self) -> SparkSession:
        """The process's SparkSession, started on first use.

        Raises:
            ConfigError: a session with another master is already running in this process.
        """
        from dagster_pyspark import LazyPySparkResource

        # getOrCreate: the running session if there is one, whatever its master.
        session = LazyPySparkResource(spark_config=self.spark_config()).spark_session
        running = session.sparkContext.master
        if running != self.master:
            raise ConfigError(
                f"This process already runs Spark on {running!r}; the spark resource asks "
                f"for {self.master!r}. Run the training in its own process."
            )
        session.sparkContext.setLogLevel(self.log_level)
        return session


def spark_resource(settings: Settings) -> SparkResource:
    """The profile's Spark: in-process locally, ``ONERING_SPARK_MASTER`` (read at run) else."""
    host = os.environ.get("ONERING_SPARK_DRIVER_HOST", "")
    scratch = os.environ.get("ONERING_SPARK_SCRATCH_DIR", "")
    if settings.profile == "local":  # in-process, unless ONERING_SPARK_MASTER names a cluster
        master = os.environ.get(SPARK_MASTER_ENV) or "local[*]"
        return SparkResource(master=master, driver_host=host, scratch_dir=scratch)
    return SparkResource(
        master=dg.EnvVar(SPARK_MASTER_ENV),  # type: ignore[arg-type]
        driver_host=host,
        scratch_dir=scratch,
    )
