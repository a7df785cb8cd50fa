"""What a promotion tells production's Dagster instance.

A promotion (`onering env promote`, or one a kill stopped, finished by the next command) is
not a Dagster run: without these runless events the UI and `onering assets show` would keep
showing production's own last run of the promoted partitions and its check results. Each
promoted partition is reported materialized (``promoted_from``), and each check of a
promoted table reports its latest evaluation by a run that built the promoted partitions in
the environment (a table only recorded there, never rebuilt, carries no evaluation over).

The report follows the promotion's last step; a process killed in between leaves
production's rows promoted and Dagster untold (the next `onering env promote ENV` says
"Nothing to promote" and does not report it again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg
    import psycopg
    from clickhouse_connect.driver.client import Client

    from onering_assets.settings import Settings

Tables = dict[str, list[str]]  # table key -> partitions ("" for a whole table)


def _checks(defs: dg.Definitions, tables: Tables) -> list[dg.AssetCheckKey]:
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


def built_by(client: Client, env: str, tables: Tables) -> set[str]:
    """The runs that built ``tables``' partitions in ``env`` (from its deployment records)."""
    from onering_assets.change import state

    records = state.deployed(client, env)
    return {
        records[key][part].run_id
        for key, parts in tables.items()
        for part in parts
        if part in records.get(key, {})
    }


def report_promotion(
    settings: Settings, env: str, tables: Tables, runs: set[str], defs: dg.Definitions
) -> int:
    """Report ``env``'s promotion of ``tables``, built by ``runs``, to production's instance.

    Returns how many check evaluations were carried over.
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
    with env_instance(settings, env) as branch:
        latest = latest_completed(branch, _checks(defs, tables), runs)
    carried = 0
    for record in latest.values():
        event = record.event.dagster_event if record.event is not None else None
        if event is not None:
            production.report_runless_asset_event(_copied(event.asset_check_evaluation_data, env))
            carried += 1
    return carried


def tell(
    settings: Settings, client: Client, env: str, tables: Tables, defs: dg.Definitions
) -> str | None:
    """``report_promotion``; a failure is returned as a warning: the promotion stands."""
    try:
        report_promotion(settings, env, tables, built_by(client, env, tables), defs)
    except Exception as e:  # Dagster's storage, a definition: the rows are promoted anyway
        return f"warning: {env} was promoted, but production's Dagster instance was not told: {e}"
    return None


def finish_and_report(
    settings: Settings,
    client: Client,
    conn: psycopg.Connection | None,
    defs: dg.Definitions | None = None,
) -> tuple[dict[str, Tables], list[str]]:
    """Finish the promotions a kill stopped (``promote.finish_promotions``) and report each.

    Returns, per environment, the tables and partitions its finished promotion made
    production, and the warnings of reports that failed. ``defs`` are built only when
    something was finished and none were given.
    """
    from onering_assets.change.promote import finish_promotions

    finished: dict[str, Tables] = {}
    for entry in finish_promotions(client, conn):
        tables = finished.setdefault(entry.table, {})
        for key, parts in entry.payload["tables"].items():
            tables[key] = sorted(set(tables.get(key, [])) | set(parts))
    if finished and defs is None:
        from onering_assets.definitions import build_definitions

        defs = build_definitions(settings)
    assert defs is not None or not finished
    warnings = [tell(settings, client, env, t, defs) for env, t in finished.items() if defs]
    return finished, [w for w in warnings if w]
