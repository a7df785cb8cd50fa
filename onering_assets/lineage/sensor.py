"""Run-status sensors: runs launched outside OneRing's runner reach the catalog too.

The runner records and publishes the runs it starts (the CLI, the Airflow bridge's
``in_process`` and ``subprocess`` modes). Runs launched from the Dagster UI, by the daemon or
by the bridge's ``dagster_graphql`` mode run in Dagster's own run workers; these sensors see
them end (success, failure, cancel), record them in the same outbox and publish like the
runner does. The ledger keeps a run the runner already published from going out twice.

Dagster's run-status sensors only see runs of their own code location, launched through
it; ``execute_in_process`` runs (the runner's) have no code-location origin, so they are
the runner's alone. Each tick handles one ended run (the evaluation returns a
``SkipReason`` saying what happened, shown in the UI's tick history), so one tick makes at
most one publish, within :data:`SENSOR_BUDGET_S`, under Dagster's 60 s sensor time-out;
every publish carries all pending runs, so a burst of runs catches up in one publish.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from onering_assets.errors import ConfigError
from onering_assets.settings import CatalogSettings, Settings

# Dagster stops a sensor evaluation after 60 s (DEFAULT_SENSOR_GRPC_TIMEOUT).
SENSOR_BUDGET_S = 40.0
SENSOR_INTERVAL_S = 15
ENDED = {
    "catalog_on_success": dg.DagsterRunStatus.SUCCESS,
    "catalog_on_failure": dg.DagsterRunStatus.FAILURE,
    "catalog_on_canceled": dg.DagsterRunStatus.CANCELED,
}


def record_and_publish(
    context: dg.RunStatusSensorContext,
    settings: Settings,
    definitions: Callable[[], dg.Definitions],
) -> dg.SkipReason:
    """The sensors' body: record the ended run, publish if a catalog is configured.

    Args:
        context: the run-status sensor's context (the run that ended, the instance).
        settings: whose state folder holds the outbox.
        definitions: the code location's definitions, built only when a publish needs them.

    Returns:
        What happened, for the tick history (never an error: the catalog fails no run).
    """
    from onering_assets.lineage.publish import after_run

    run_id = context.dagster_run.run_id
    lines: list[str] = []
    try:
        configured = CatalogSettings.from_env().configured
    except ConfigError as err:  # after_run reports it; the run is recorded all the same
        configured, lines = False, [f"catalog: {err}"]
    result = after_run(
        definitions() if configured else None,
        context.instance,
        run_id,
        settings.state_dir,
        publish=configured,
        budget_s=SENSOR_BUDGET_S,
        report=lines.append,
        progress=context.log.info,
    )
    if lines:
        context.log.warning(lines[0])
        return dg.SkipReason(lines[0])
    if result is None:
        return dg.SkipReason(f"run {run_id} recorded as pending (no catalog configured)")
    return dg.SkipReason(f"run {run_id}: {result.message}")


def catalog_sensors(settings: Settings) -> list[dg.RunStatusSensorDefinition]:
    """One run-status sensor per way a run ends, running by default (with the daemon)."""
    cache: dict[str, dg.Definitions] = {}

    def definitions() -> dg.Definitions:
        if "defs" not in cache:
            from onering_assets.definitions import build_definitions

            cache["defs"] = build_definitions(settings)
        return cache["defs"]

    def sensor(name: str, status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
        @dg.run_status_sensor(
            run_status=status,
            name=name,
            minimum_interval_seconds=SENSOR_INTERVAL_S,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=(
                f"Records each run of this code location that ends {status.value} for the "
                "catalog and publishes it (OpenMetadata, OpenLineage) when one is configured."
            ),
        )
        def _sensor(context: dg.RunStatusSensorContext) -> dg.SkipReason:
            return record_and_publish(context, settings, definitions)

        return _sensor

    return [sensor(name, status) for name, status in ENDED.items()]
