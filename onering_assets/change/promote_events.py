"""What a promotion tells production's Dagster instance.

A promotion (`onering env promote`, or one a kill stopped, finished by the next command) is
not a Dagster run: without these runless events the UI and `onering assets show` would keep
showing production's own last run of the promoted partitions and its check results. Each
promoted partition is reported materialized (``promoted_from``), and each check of a
promoted table reports its latest completed evaluation in the environment, the one that
judged the rows production now holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg
    import psycopg
    from clickhouse_connect.driver.client import Client

    from onering_assets.settings import Settings


def _checks(defs: dg.Definitions, tables: dict[str, list[str]]) -> list[dg.AssetCheckKey]:
    import dagster as dg

    from onering_assets.runner import check_keys

    keys = {dg.AssetKey(key.split("/")) for key in tables}
    return sorted(check_keys(defs, keys), key=lambda k: (k.asset_key.to_user_string(), k.name))


def _copied(evaluation: dg.AssetCheckEvaluation, env: str) -> dg.AssetCheckEvaluation:
    """The environment's evaluation, told as production's (its materialization is the env's)."""
    import dagster as dg

    return dg.AssetCheckEvaluation(
        asset_key=evaluation.asset_key,
        check_name=evaluation.check_name,
        passed=evaluation.passed,
        metadata={**evaluation.metadata, "promoted_from": dg.MetadataValue.text(env)},
        severity=evaluation.severity,
        description=evaluation.description,
        blocking=evaluation.blocking,
        partition=evaluation.partition,
    )


def report_promotion(
    settings: Settings,
    env: str,
    tables: dict[str, list[str]],
    defs: dg.Definitions | None = None,
) -> int:
    """Report ``env``'s promotion of ``tables`` to production's instance.

    ``tables`` maps each key to its promoted partitions ("" for a whole table). Returns how
    many check evaluations were carried over.
    """
    import dagster as dg

    from onering_assets.history import latest_completed
    from onering_assets.instances import env_home, env_instance, instance_for

    production = instance_for(settings)
    for key, parts in sorted(tables.items()):
        for part in parts:
            production.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey(key.split("/")),
                    partition=part or None,
                    description=f"promoted from environment {env} (onering env promote)",
                    metadata={"promoted_from": env},
                )
            )
    if not (env_home(settings, env) / ".storage-ready").exists():
        return 0  # the environment ran nothing (its tables were only recorded)
    if defs is None:
        from onering_assets.definitions import build_definitions

        defs = build_definitions(settings)
    with env_instance(settings, env) as branch:
        latest = latest_completed(branch, _checks(defs, tables))
    carried = 0
    for record in latest.values():
        event = record.event.dagster_event if record.event is not None else None
        if event is not None:
            production.report_runless_asset_event(_copied(event.asset_check_evaluation_data, env))
            carried += 1
    return carried


def finish_and_report(
    settings: Settings, client: Client, conn: psycopg.Connection | None
) -> dict[str, dict[str, list[str]]]:
    """Finish the promotions a kill stopped (``promote.finish_promotions``) and report each.

    Returns, per environment, the tables and partitions its finished promotion made
    production.
    """
    from onering_assets.change.promote import finish_promotions

    finished: dict[str, dict[str, list[str]]] = {}
    for entry in finish_promotions(client, conn):
        finished.setdefault(entry.table, {}).update(entry.payload["tables"])
    for env, tables in sorted(finished.items()):
        report_promotion(settings, env, tables)
    return finished
