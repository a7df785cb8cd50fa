"""`onering apply --env` and `onering env promote`, end to end on real stores.

Production is built for January and February. A mart edit applied to ``dev`` changes only
``gold__dev`` (production's rows and records are untouched, production still plans it);
promoting ``dev`` makes production's rows the environment's and production plans nothing.
A Silver edit is built into ``dev`` (flights and the marts that read it), and its promotion
is SIGKILLed after Silver's swaps, before Gold's: the next command opening the stores
(`onering apply`) finishes it from the journal, so production ends with every table of the
promotion. Production's Dagster instance is told of each promotion: a materialization of
each promoted partition, and the environment's latest evaluation of each promoted check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.change.cli import ok, onering, rows
from tests.change.cli import project as project_env

MART = "gold/carrier_monthly_performance"
SQL = "analytics/clickhouse"
CARRIER = "SELECT carrier, month, avg_arr_delay FROM {s}.carrier_monthly_performance ORDER BY 1, 2"
FLIGHTS = "SELECT sum(arr_delay) AS s, count(arr_delay) AS n FROM {d}.flights"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_source) -> Iterator[dict[str, str]]:
    from onering_assets.resources.postgres import stop_embedded

    env = project_env(tmp_path_factory.mktemp("promote"), make_source())
    ok(onering(env, "materialize", "-s", "group:bronze", "--from", "2013-01", "--to", "2013-02"))
    ok(onering(env, "apply"))
    yield env
    # The promotion SIGKILLed below leaves the Gold server it started running: stop it.
    stop_embedded(Path(env["ONERING_STATE_DIR"]) / "postgres")


def edit(env: dict[str, str], path: str, old: str, new: str) -> None:
    file = Path(env["ONERING_PLATFORM_DIR"]) / SQL / path
    assert old in file.read_text()
    file.write_text(file.read_text().replace(old, new))


def deployed(env: dict[str, str], name: str = "prod") -> list[dict]:
    query = (
        "SELECT key, partition, source, run_id FROM onering.deployed FINAL "
        f"WHERE env = '{name}' AND NOT removed ORDER BY key, partition"
    )
    return rows(env, query)


def keys_planned(env: dict[str, str], *args: str) -> set[str]:
    import json

    return {t["key"] for t in json.loads(ok(onering(env, "plan", "--json", *args)))["tables"]}


def promoted_from(env: dict[str, str], key: str, month: str) -> str | None:
    """``promoted_from`` of the latest materialization production's Dagster has of it."""
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(key.split("/")), asset_partitions=[month]),
            limit=1,
        )
    event = latest.records[0].asset_materialization if latest.records else None
    value = event.metadata.get("promoted_from") if event is not None else None
    return value.value if value is not None else None  # type: ignore[return-value]


def checks_of(env: dict[str, str], key: str, name: str = "") -> dict[str, tuple[bool, str]]:
    """Each check of ``key``: (passed, promoted_from) of its latest completed evaluation in
    production's Dagster instance, or environment ``name``'s."""
    import dagster as dg

    from onering_assets.definitions import build_definitions
    from onering_assets.history import latest_completed
    from onering_assets.runner import check_keys
    from onering_assets.settings import Settings

    state = Path(env["ONERING_STATE_DIR"])
    defs = build_definitions(Settings(profile="local", state_dir=state))
    home = state / "envs" / name / "dagster" if name else Path(env["DAGSTER_HOME"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        latest = latest_completed(
            instance, sorted(check_keys(defs, {dg.AssetKey(key.split("/"))}), key=str)
        )
    found = {}
    for check, record in latest.items():
        data = record.event.dagster_event.asset_check_evaluation_data  # type: ignore[union-attr]
        origin = data.metadata.get("promoted_from")
        found[check.name] = (data.passed, origin.value if origin is not None else "")
    return found


def assert_checks_promoted(env: dict[str, str], key: str) -> None:
    """Production's latest evaluation of each of ``key``'s checks is dev's, marked so."""
    prod_checks, dev_checks = checks_of(env, key), checks_of(env, key, "dev")
    assert prod_checks and prod_checks == {n: (p, "dev") for n, (p, _) in dev_checks.items()}


def test_a_change_built_in_an_environment_leaves_production_until_promoted(project) -> None:
    prod_rows, prod_records = rows(project, CARRIER.format(s="gold"), "gold"), deployed(project)
    edit(
        project,
        "gold/carrier_monthly_performance.sql",
        "avg(f.arr_delay) AS",
        "avg(f.arr_delay) + 5 AS",
    )
    assert "Applied: the plan is now empty." in ok(
        onering(project, "apply", "--env", "dev", "--skip-tests")
    )
    assert rows(project, CARRIER.format(s="gold"), "gold") == prod_rows
    assert deployed(project) == prod_records
    dev = rows(project, CARRIER.format(s="gold__dev"), "gold")
    assert [r["avg_arr_delay"] for r in dev] == pytest.approx(
        [r["avg_arr_delay"] + 5 for r in prod_rows]
    )
    assert keys_planned(project, "--env", "dev") == set()
    assert keys_planned(project) == {MART}
    listed = ok(onering(project, "env", "list"))
    assert f"changed 1 table since (built or recorded): {MART} 2013-01..2013-02" in listed
    assert json.loads(ok(onering(project, "env", "list", "--json")))[0]["differs"] == {
        MART: ["2013-01", "2013-02"]
    }

    promoted = ok(onering(project, "env", "promote", "dev"))
    assert f"promoted {MART}: 2013-01, 2013-02" in promoted
    for month in ("2013-01", "2013-02"):  # production's Dagster sees the promotion
        assert promoted_from(project, MART, month) == "dev"
    # and the checks that judged the promoted rows, as the environment evaluated them
    assert_checks_promoted(project, MART)
    assert rows(project, CARRIER.format(s="gold"), "gold") == dev
    assert keys_planned(project) == set()
    assert "Nothing to promote" in ok(onering(project, "env", "promote", "dev"))
    assert "changed nothing since" in ok(onering(project, "env", "list"))


def test_a_promotion_killed_half_way_is_finished_by_the_next(project) -> None:
    edit(
        project,
        "silver/flights.sql",
        "arr_delay_min AS arr_delay",
        "arr_delay_min + 1 AS arr_delay",
    )
    ok(onering(project, "apply", "--env", "dev", "--skip-tests"))
    before = rows(project, FLIGHTS.format(d="silver"))[0]
    dev_flights = rows(project, FLIGHTS.format(d="silver__dev"))[0]
    dev_mart = rows(project, CARRIER.format(s="gold__dev"), "gold")
    assert dev_flights == {"s": before["s"] + before["n"], "n": before["n"]}  # +1 each

    killed = onering(
        {**project, "ONERING_FAULT": "env.promote.after_silver"}, "env", "promote", "dev"
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    stopped = onering(project, "plan")
    assert "promotion of dev stopped half-way" in stopped.stderr

    assert promoted_from(project, "silver/flights", "2013-01") is None
    # the next command opening the stores finishes it, and tells production's Dagster
    finished = onering(project, "apply", "--skip-tests")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "finished the promotion of dev a kill had stopped: " in finished.stderr
    # planned after finishing: only the feature views (production's alone) read the change
    applied = [line for line in finished.stderr.splitlines() if line.startswith("applying: ")]
    assert applied and all("silver/" not in a and "gold/" not in a for a in applied), applied
    assert rows(project, FLIGHTS.format(d="silver"))[0] == dev_flights
    assert rows(project, CARRIER.format(s="gold"), "gold") == dev_mart
    assert not {"silver/flights", MART} & keys_planned(project)
    assert promoted_from(project, "silver/flights", "2013-01") == "dev"
    assert_checks_promoted(project, "silver/flights")
    assert "Nothing to promote" in ok(onering(project, "env", "promote", "dev"))


def test_a_partition_production_republished_after_the_branch_is_not_promoted(project) -> None:
    """Production moved on (a month re-published) after the environment was created:
    promoting its older build would replace newer rows, so nothing is promoted."""
    ok(onering(project, "env", "create", "late"))
    edit(
        project,
        "gold/carrier_monthly_performance.sql",
        "avg(f.dep_delay) AS",
        "avg(f.dep_delay) + 1 AS",
    )
    ok(onering(project, "apply", "--env", "late", "--skip-tests"))
    # Meanwhile production, still on the old declaration, re-publishes January.
    edit(
        project,
        "gold/carrier_monthly_performance.sql",
        "avg(f.dep_delay) + 1 AS",
        "avg(f.dep_delay) AS",
    )
    ok(onering(project, "materialize", "-s", f'key:"{MART}"', "--partition", "2013-01"))
    before, records = rows(project, CARRIER.format(s="gold"), "gold"), deployed(project)

    refused = onering(project, "env", "promote", "late")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"Production re-published {MART} 2013-01 after late was created" in refused.stderr
    assert rows(project, CARRIER.format(s="gold"), "gold") == before
    assert deployed(project) == records
    ok(onering(project, "env", "drop", "late"))


def test_a_change_production_also_built_is_not_the_environment_s_to_promote(project) -> None:
    """The same edit applied to an environment and then to production: the environment
    holds nothing production lacks, so it lists nothing and promotes nothing (no refusal)."""
    ok(onering(project, "env", "create", "twin"))
    edit(
        project,
        "gold/carrier_monthly_performance.sql",
        "avg(f.dep_delay) AS",
        "avg(f.dep_delay) + 2 AS",
    )
    ok(onering(project, "apply", "--env", "twin", "--skip-tests"))

    def twin() -> str:
        listed = ok(onering(project, "env", "list")).splitlines()
        return next(line for line in listed if line.startswith("twin  "))

    assert f"changed 1 table since (built or recorded): {MART} 2013-01..2013-02" in twin()
    ok(onering(project, "apply", "--skip-tests"))  # production builds the same change
    assert twin().endswith("changed nothing since")
    before, records = rows(project, CARRIER.format(s="gold"), "gold"), deployed(project)
    assert "Nothing to promote" in ok(onering(project, "env", "promote", "twin"))
    assert rows(project, CARRIER.format(s="gold"), "gold") == before
    assert deployed(project) == records
    ok(onering(project, "env", "drop", "twin"))
