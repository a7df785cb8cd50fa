"""Export: deterministic, checked for staleness, no secrets, and parsed by the real Airflow."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_bridge.config import RenderConfig, load_config
from airflow_bridge.export import render, snapshot, stale_files, write
from onering_assets.definitions import build_definitions
from onering_assets.settings import PLATFORM_DIR, Settings

AIRFLOW_DIR = PLATFORM_DIR / "orchestration" / "airflow"
HERE = Path(__file__).parent


def exported(tmp_path: Path, config: RenderConfig | None = None) -> dict[str, str]:
    config = config or load_config(AIRFLOW_DIR / "bridge.yml")
    defs = build_definitions(Settings(profile="local", state_dir=tmp_path))
    return render(snapshot(defs, config), config)


def test_committed_dag_files_are_up_to_date(tmp_path: Path) -> None:
    assert stale_files(AIRFLOW_DIR / "dags", exported(tmp_path)) == [], (
        "run `onering airflow export` and commit the result"
    )


def test_export_is_deterministic_and_check_finds_stale_files(tmp_path: Path) -> None:
    first, second = exported(tmp_path / "a"), exported(tmp_path / "b")
    assert first == second
    dags = tmp_path / "dags"
    assert len(write(dags, first)) == len(first)
    assert write(dags, first) == []
    (dags / "onering_silver.py").write_text("# edited by hand\n")
    (dags / "onering_old_group.py").write_text("# from a group that is gone\n")
    assert stale_files(dags, first) == ["onering_old_group.py", "onering_silver.py"]


def test_manifest_carries_graph_checks_and_catalog_names(tmp_path: Path) -> None:
    manifest = json.loads(exported(tmp_path)["onering_manifest.json"])
    assets = {a["key"]: a for a in manifest["assets"]}
    cmp = assets["gold/carrier_monthly_performance"]
    assert cmp["deps"] == ["silver/airlines", "silver/flights"]
    assert cmp["partitions"] == {"start": "2013-01", "end": "2013-12", "fmt": "%Y-%m"}
    assert {"name": "reconciliation", "blocking": True} in cmp["checks"]
    assert cmp["openmetadata"] == {
        "database": "onering",
        "schema": "gold",
        "table": "carrier_monthly_performance",
    }
    assert cmp["uri"] == "onering://gold/carrier_monthly_performance"
    assert cmp["owners"] == ["team:flight-analytics"]


def test_no_secret_or_machine_path_in_exported_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    for var in ("AWS_SECRET_ACCESS_KEY", "ONERING_POSTGRES_DSN", "ONERING_CLICKHOUSE_DSN"):
        monkeypatch.setenv(var, f"{var}-{secret}")
    for settings in (
        Settings(profile="local", state_dir=tmp_path),
        Settings(profile="compose", state_dir=tmp_path),
    ):
        config = RenderConfig()
        files = render(snapshot(build_definitions(settings), config), config)
        text = "".join(files.values())
        assert secret not in text
        assert str(tmp_path) not in text


def test_dagbag_parses_the_exported_files_without_dagster(airflow_env: dict[str, str]) -> None:
    code = (
        "import json, sys, time; from airflow.dag_processing.dagbag import DagBag;"
        f"t = time.perf_counter(); bag = DagBag(dag_folder={str(AIRFLOW_DIR / 'dags')!r});"
        "print(json.dumps({'errors': {str(k): v for k, v in bag.import_errors.items()},"
        " 'dags': {d: sorted(t.task_id for t in bag.dags[d].tasks) for d in bag.dags},"
        " 'outlets': sorted(o.uri for d in bag.dags.values() for t in d.tasks for o in t.outlets),"
        " 'timetables': {d: type(bag.dags[d].timetable).__name__ for d in bag.dags},"
        " 'dagster': sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('dagster', 'onering_assets'))}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=airflow_env, capture_output=True, text=True, timeout=300
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dagster"] == []
    assert sorted(result["dags"]) == [
        "onering_airbyte",
        "onering_bronze",
        "onering_drift",
        "onering_features",
        "onering_gold",
        "onering_ml",
        "onering_silver",
        "onering_stream",
    ]
    # The scheduled drift reports: one partitioned run per closed month.
    assert result["timetables"]["onering_drift"] == "CronPartitionTimetable"
    assert result["dags"]["onering_drift"][0] == "ml__drift_report"
    assert "ml__flight_late_arrival" in result["dags"]["onering_ml"]
    assert "gold__carrier_monthly_performance" in result["dags"]["onering_gold"]
    assert "onering://silver/flights" in result["outlets"]


def test_one_dag_grouping_renders(tmp_path: Path) -> None:
    config = replace(RenderConfig(), grouping="one")
    files = exported(tmp_path, config)
    assert sorted(files) == ["onering.plan.json", "onering.py", "onering_manifest.json"]


def test_direct_edge_wiring_survives_airflow_serialization(
    tmp_path: Path, airflow_env: dict[str, str]
) -> None:
    """airflow_bridge.dag fills upstream/downstream ids directly (internal API, O(1) per
    edge); Airflow's own DAG serialization must keep every edge."""
    dags = tmp_path / "dags"
    write(dags, exported(tmp_path / "state", replace(RenderConfig(), grouping="one")))
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag;"
        "from airflow.serialization.serialized_objects import DagSerialization;"
        f"dag = DagBag(dag_folder={str(dags)!r}).dags['onering'];"
        "back = DagSerialization.from_dict(DagSerialization.to_dict(dag));"
        "edges = lambda d: sorted((u, t.task_id) for t in d.tasks for u in t.upstream_task_ids);"
        "print(json.dumps({'before': edges(dag), 'after': edges(back),"
        " 'down': sorted((t.task_id, d) for t in back.tasks for d in t.downstream_task_ids)}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=airflow_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ["silver__flights", "gold__carrier_monthly_performance"] in result["before"]
    assert ["bronze__flights", "silver__flights"] in result["before"]
    assert result["after"] == result["before"]
    assert result["down"] == result["before"]  # downstream ids mirror upstream ids


def test_snapshot_keeps_the_partition_format_and_refuses_what_airflow_cannot_key() -> None:
    import dagster as dg

    from airflow_bridge.errors import BridgeError

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2013-01-30", end_date="2013-02-03"))
    def daily() -> None: ...

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
    def static() -> None: ...

    manifest = snapshot(dg.Definitions(assets=[daily]), RenderConfig())
    assert manifest.assets[0].partitions == {
        "start": "2013-01-30",
        "end": "2013-02-02",
        "fmt": "%Y-%m-%d",
    }
    with pytest.raises(BridgeError, match="static: StaticPartitionsDefinition cannot be mapped"):
        snapshot(dg.Definitions(assets=[static]), RenderConfig())


def test_bridge_yml_selections_are_resolved_by_dagster_into_the_plan(tmp_path: Path) -> None:
    config = replace(
        RenderConfig(),
        grouping="selection",
        dags={"marts": "sinks(*)", "feeds": "not sinks(*)"},
        exclude='key:"bronze/planes"',
    )
    files = exported(tmp_path, config)
    manifest = json.loads(files["onering_manifest.json"])
    sinks = manifest["selections"]["sinks(*)"]
    assert {"gold/carrier_monthly_performance", "gold/route_performance"} <= set(sinks)
    assert "silver/flights" not in sinks and "bronze/flights" not in sinks
    marts = json.loads(files["marts.plan.json"])["plan"]
    assert sorted(k for t in marts["tasks"] for k in t["asset_keys"]) == sinks
    feeds = {t["task_id"] for t in json.loads(files["feeds.plan.json"])["plan"]["tasks"]}
    assert "bronze__planes" not in feeds and "silver__flights" in feeds
    from airflow_bridge.errors import BridgeError

    with pytest.raises(BridgeError, match="cannot resolve selection 'group:silver and'"):
        exported(tmp_path, replace(RenderConfig(), select="group:silver and"))


def test_the_exported_bronze_schedule_runs_only_declared_months(
    airflow_env: dict[str, str],
) -> None:
    """What Airflow's scheduler makes of the committed DAGs (serialized, as it reads them):
    Bronze's @monthly runs build 2013-01..2013-12 and nothing else, so unpausing it today
    runs nothing; Silver and Gold run only on their upstream DAGs' asset events."""
    today, june, before = (
        "2026-11-30T12:00:00+00:00",
        "2013-06-15T12:00:00+00:00",
        "2012-06-01T00:00:00+00:00",
    )
    probe = [sys.executable, str(HERE / "schedule_probe.py"), str(AIRFLOW_DIR / "dags")]
    proc = subprocess.run(
        [*probe, today, june, before],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    bronze = result["dags"]["onering_bronze"]
    assert bronze["caught_up"] == [f"2013-{month:02d}" for month in range(1, 13)]
    assert bronze["first_run"] == {
        today: None,  # past the last month: unpausing it runs nothing
        june: ["2013-06-01T00:00:00+00:00", "2013-05"],  # catchup=False: the month that closed
        before: ["2013-02-01T00:00:00+00:00", "2013-01"],  # when January closes
    }
    assert result["dags"]["onering_silver"] is None
    assert result["dags"]["onering_gold"] is None
