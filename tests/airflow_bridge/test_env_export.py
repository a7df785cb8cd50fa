"""`onering airflow export --env NAME`: DAGs that build an environment, run by the real Airflow.

Production is built for January, then February lands in Bronze, and environment ``dev`` is
created. Its export writes only ``onering_dev_silver`` and ``onering_dev_gold`` into
``dags/env_dev/`` (production's DAG files untouched). On a live local Airflow (`onering
airflow up`), February triggered on the environment's Silver DAG flows to its Gold DAG: the
rows land in ``silver__dev`` and ``gold__dev``, every Dagster run is tagged
``onering/env=dev`` and kept in the environment's own Dagster instance, and production is
byte-identical. `onering env drop dev` removes the DAGs and the runs; a copy of the DAGs
run after the drop (`dag.test()`) fails at once, without a retry, naming the missing
environment. Exporting for an environment that does not exist is refused (exit 3).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from airflow_bridge.config import RenderConfig, for_env, load_config
from airflow_bridge.errors import BridgeError
from airflow_bridge.graph import plan_dags
from airflow_bridge.processes import free_port
from onering_assets.settings import PLATFORM_DIR
from tests.change.cli import ok, onering, rows
from tests.change.cli import project as project_env

pytestmark = pytest.mark.slow

DAGS = Path("orchestration/airflow/dags")
SILVER = "SELECT '{t}' AS t, count() AS n, sum(cityHash64(*)) AS h FROM {d}.{t}"
TABLES = ("airlines", "airports", "flights", "planes", "weather")
MART = "SELECT * FROM {s}.carrier_monthly_performance ORDER BY 1, 2, 3"


def folder_digest(folder: Path) -> dict[str, str]:
    """Each file directly in ``folder`` (an environment's sub-folder is not production's)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.*")}


def production(env: dict[str, str]) -> dict[str, object]:
    silver = " UNION ALL ".join(SILVER.format(t=t, d="silver") for t in TABLES)
    return {
        "silver": sorted(rows(env, silver), key=lambda r: r["t"]),
        "gold": rows(env, MART.format(s="gold"), "gold"),
        "dags": folder_digest(Path(env["ONERING_PLATFORM_DIR"]) / DAGS),
    }


def months(env: dict[str, str], query: str, target: str = "silver") -> list[str]:
    return [r["m"] for r in rows(env, query, target)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_source) -> dict[str, str]:
    env = project_env(tmp_path_factory.mktemp("env_export"), make_source())
    medallion = "group:bronze or group:silver or group:gold"
    ok(onering(env, "materialize", "-s", medallion, "--from", "2013-01", "--to", "2013-01"))
    # February lands in Bronze only: the environment builds it, production does not.
    ok(onering(env, "materialize", "-s", "group:bronze", "--from", "2013-02", "--to", "2013-02"))
    return env


def test_the_environment_plans_only_its_silver_and_gold_on_their_own_airflow_assets(
    tmp_path: Path,
) -> None:
    from airflow_bridge.export import snapshot
    from onering_assets.definitions import build_definitions
    from onering_assets.settings import Settings

    prod = load_config(PLATFORM_DIR / DAGS.parent / "bridge.yml")
    config = for_env(prod, "dev", ("silver", "gold"))
    defs = build_definitions(Settings(profile="local", state_dir=tmp_path))
    plans = {p.dag_id: p for p in plan_dags(snapshot(defs, config), config)}
    assert sorted(plans) == ["onering_dev_gold", "onering_dev_silver"]
    assert config.env == "dev" and not config.publish_lineage
    silver, gold = plans["onering_dev_silver"], plans["onering_dev_gold"]
    # Nothing on production's clock: Silver waits for an asset nothing updates (by hand,
    # with a partition key), Gold for the environment's own Silver DAG...
    assert (silver.schedule, silver.schedule_assets) == ("assets", ("onering://manual?env=dev",))
    assert gold.schedule == "assets"
    assert gold.schedule_assets and all(u.endswith("?env=dev") for u in gold.schedule_assets)
    outlets = {o for p in plans.values() for t in p.tasks for o in t.outlets}
    prod_plans = plan_dags(snapshot(defs, prod), prod)
    prod_outlets = {o for p in prod_plans for t in p.tasks for o in t.outlets}
    assert outlets and not outlets & prod_outlets  # ...so production's runs never trigger it
    assert {o.removesuffix("?env=dev") for o in outlets} <= prod_outlets


def test_bridge_yml_cannot_set_the_environment_and_a_bad_name_is_no_dag_id(
    tmp_path: Path,
) -> None:
    bridge = tmp_path / "bridge.yml"
    bridge.write_text("env: dev\n")
    with pytest.raises(BridgeError, match="--env NAME"):
        load_config(bridge)
    with pytest.raises(BridgeError, match="dag_prefix"):
        for_env(RenderConfig(), "dev; drop", ("silver",))
    graphql = replace(RenderConfig(), mode="dagster_graphql")
    with pytest.raises(BridgeError, match="production's\\) Dagster instance"):
        for_env(graphql, "dev", ("silver",))


def test_selection_dags_get_the_environment_name_and_those_without_its_tables_are_left_out(
    tmp_path: Path,
) -> None:
    from airflow_bridge.export import snapshot
    from onering_assets.definitions import build_definitions
    from onering_assets.settings import Settings

    prod = replace(
        RenderConfig(),
        grouping="selection",
        dags={"onering_tables": "group:silver or group:gold", "lake": "group:bronze"},
    )
    config = for_env(prod, "qa", ("silver", "gold"))
    defs = build_definitions(Settings(profile="local", state_dir=tmp_path))
    plans = plan_dags(snapshot(defs, config), config)
    assert [p.dag_id for p in plans] == ["onering_qa_tables"]  # never production's id
    prod_ids = {p.dag_id for p in plan_dags(snapshot(defs, prod), prod)}
    assert prod_ids == {"onering_tables", "lake"}
    bronze_only = for_env(replace(RenderConfig(), select="group:bronze"), "qa", ("silver",))
    with pytest.raises(BridgeError, match="exports no Silver or Gold table"):
        plan_dags(snapshot(defs, bronze_only), bronze_only)


def _a_failed_run_says_why(project: dict[str, str]) -> None:
    """A run that fails says which task failed and why (its log's error lines), here: a
    Silver column declared with no changeset is refused before anything is written."""
    tables = Path(project["ONERING_PLATFORM_DIR"]) / "analytics/clickhouse/silver"
    sql, yml = tables / "airlines.sql", tables / "airlines.yml"
    kept = sql.read_text(), yml.read_text()
    try:
        sql.write_text(
            kept[0].replace("trimBoth(name) AS name,", "trimBoth(name) AS name, 1 AS x,")
        )
        yml.write_text(kept[1] + "  - {name: x, type: UInt8}\n")
        run = onering(
            project, "airflow", "trigger", "onering_dev_silver", "--partition", "2013-02", "--wait"
        )
    finally:
        sql.write_text(kept[0])
        yml.write_text(kept[1])
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed: onering_dev_silver; its run: http://" in run.stderr
    said = run.stderr.split("onering_dev_silver.", 1)[1]  # "<task> failed:", then the reasons
    assert "column `x` UInt8 is declared but missing" in said, run.stderr
    assert "ALTER TABLE silver.airlines ADD COLUMN `x` UInt8" in said, run.stderr


def test_exported_environment_dags_build_only_the_environment(
    project: dict[str, str], run_dag, tmp_path: Path
) -> None:
    platform = Path(project["ONERING_PLATFORM_DIR"])
    folder = platform / DAGS / "env_dev"
    refused = onering(project, "airflow", "export", "--env", "dev")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "onering env create dev" in refused.stderr and not folder.exists()

    ok(onering(project, "env", "create", "dev"))
    before = production(project)
    said = ok(onering(project, "airflow", "export", "--env", "dev"))
    assert "onering_dev_gold, onering_dev_silver" in said
    assert sorted(p.name for p in folder.iterdir()) == [
        "onering_dev_gold.plan.json",
        "onering_dev_gold.py",
        "onering_dev_silver.plan.json",
        "onering_dev_silver.py",
        "onering_manifest.json",
    ]
    assert "up to date" in ok(onering(project, "airflow", "export", "--env", "dev", "--check"))
    assert production(project) == before  # production's DAG files too

    bronze = onering(project, "materialize", "-s", "group:bronze", "--tag", "onering/env=dev")
    assert bronze.returncode == 2 and "holds Silver and Gold only" in bronze.stderr

    # The real Airflow, as a user runs it: one partition key triggered on the environment's
    # Silver DAG flows to its Gold DAG through the environment's own Airflow assets.
    port = free_port()
    up = onering(project, "airflow", "up", "--port", str(port))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        run = onering(
            project, "airflow", "trigger", "onering_dev_silver", "--partition", "2013-02", "--wait"
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "onering_dev_silver: success" in run.stdout
        assert "onering_dev_gold: success" in run.stdout
        _a_failed_run_says_why(project)
    finally:
        ok(onering(project, "airflow", "down"))

    month = "SELECT DISTINCT formatDateTime(flight_date, '%Y-%m') AS m FROM {d}.flights ORDER BY m"
    assert months(project, month.format(d="silver__dev")) == ["2013-01", "2013-02"]
    assert months(project, month.format(d="silver")) == ["2013-01"]
    mart = "SELECT DISTINCT to_char(month, 'YYYY-MM') AS m FROM {s}.carrier_monthly_performance"
    assert sorted(months(project, mart.format(s="gold__dev"), "gold")) == ["2013-01", "2013-02"]
    assert production(project) == before  # byte-identical: Silver's rows, Gold's, DAG files
    state = Path(project["ONERING_STATE_DIR"])
    with dg.DagsterInstance.from_config(str(state / "envs" / "dev" / "dagster")) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"airflow/dag_id": "onering_dev_gold"}))
        assert runs and all(r.tags.get("onering/env") == "dev" for r in runs)
    with dg.DagsterInstance.from_config(project["DAGSTER_HOME"]) as instance:
        assert not instance.get_runs(dg.RunsFilter(tags={"onering/env": "dev"}))  # not prod's

    store = {k: project[k] for k in ("ONERING_STATE_DIR", "ONERING_SOURCE_DIR")}
    store["ONERING_PLATFORM_DIR"] = project["ONERING_PLATFORM_DIR"]
    kept = shutil.copytree(folder, tmp_path / "env_dev")
    dropped = ok(onering(project, "env", "drop", "dev"))
    assert "Removed its Airflow DAGs" in dropped and not folder.exists()
    assert not (state / "envs" / "dev").exists()  # its runs went with it
    result = run_dag(kept, "onering_dev_silver", {"partition": "2013-02"}, **store)
    assert result["state"] == "failed"
    assert max(result["tries"].values()) == 1  # no retry: a retry would fail the same way
    assert "Environment 'dev' (run tag onering/env) does not exist" in result["log"]
    assert production(project) == before
