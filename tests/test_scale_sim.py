"""bench/scale_sim at tiny sizes: the counts it reports are the ones the graphs imply."""

from pathlib import Path

import pytest

from bench.scale_sim_backfill import airflow_backfill, dagster_backfill
from bench.scale_sim_defs import medallion_manifest, years_of_days
from bench.scale_sim_export import dagster_export, render_export
from bench.scale_sim_model import FLIGHTS_10X, model
from bench.scale_sim_report import fit_quadratic

DAYS = 10
# OneRing's medallion: 13 assets, of which flights and weather (Bronze, Silver) and two Gold
# marts are partitioned; the other seven are whole tables.
PARTITIONED, WHOLE = 6, 7


def test_the_medallion_graph_keeps_the_project_shape_per_copy() -> None:
    manifest = medallion_manifest(2, DAYS)
    assert len(manifest.assets) == 2 * (PARTITIONED + WHOLE)
    copy = {a.key: a for a in manifest.assets}["gold/carrier_monthly_performance_c001"]
    assert copy.deps == ("silver/airlines_c001", "silver/flights_c001")
    assert copy.partitions == {"start": "2014-01-01", "end": "2014-01-10", "fmt": "%Y-%m-%d"}
    assert years_of_days(10) == 3652  # 2016 and 2020 are leap years


@pytest.mark.parametrize(
    ("policy", "runs"),
    [
        ("single_run", 2),  # the partitioned roots' whole range in one run, the whole tables
        ("per_partition", DAYS + 1),  # one run per day, plus the whole tables
        ("multi_run_30", 2),  # ten days fit in one 30-day chunk
    ],
)
def test_dagster_plans_every_asset_partition_of_the_range(policy: str, runs: int) -> None:
    plan = dagster_backfill(1, DAYS, policy)
    assert plan["partitions"] == DAYS
    assert plan["target_asset_partitions"] == PARTITIONED * DAYS
    assert plan["target_unpartitioned"] == WHOLE
    assert plan["first_tick_runs"] == runs
    # The first tick cannot request what waits on the other kind: gold/carrier_monthly_performance
    # (a whole-table parent) and gold/route_performance (a partitioned parent).
    assert plan["first_tick_asset_partitions"] == (PARTITIONED - 1) * DAYS + (WHOLE - 1)


def test_airflow_runs_one_dag_run_per_day_and_counts_its_tasks() -> None:
    plan = airflow_backfill(DAYS, calls=3)
    assert plan["airflow_runs"] == DAYS and plan["runs_match_partitions"]
    # Bronze 5 + Silver 5 + Gold 3 asset tasks, and each DAG's publish_lineage teardown.
    assert plan["tasks_per_run"] == {"onering_bronze": 6, "onering_silver": 6, "onering_gold": 4}
    assert plan["task_instances"] == 16 * DAYS
    assert plan["task_instances_grouped"] == 3 * 2 * DAYS  # one task per group, and the teardown
    assert plan["range_one_run"] == ["2014-01-01", "2014-01-10"]


def test_the_export_simulations_count_what_they_built(tmp_path: Path) -> None:
    from bench.bridge_manifests import synthetic_manifest

    rendered = render_export(50, "group", tmp_path)
    assert rendered["tasks"] == 50
    assert rendered["dag_files"] == len({a.group for a in synthetic_manifest(50, "group").assets})
    assert len(list(tmp_path.glob("*.py"))) == rendered["dag_files"]
    snapped = dagster_export(30, checks=True)
    assert snapped["snapshot_assets"] == 30
    assert snapped["checks"] == snapped["snapshot_checks"] == 3 * 30


def test_fit_and_model_arithmetic() -> None:
    b, c = fit_quadratic([(n, 2e-3 * n + 5e-7 * n * n) for n in (1000, 2000, 4000)]) or (0, 0)
    assert b == pytest.approx(2e-3) and c == pytest.approx(5e-7)
    storage = {
        "bronze_bytes_per_row": 20.0,
        "silver_bytes_per_row": 30.0,
        "silver_uncompressed_bytes_per_row": 180.0,
    }
    out = model(storage, None)
    assert out["scale_vs_10x"] == round(1e9 / FLIGHTS_10X, 1)
    assert out["storage_gb_per_year"]["bronze_parquet"] == 20.0
    assert out["bronze_file_mb"]["daily"] == round(20.0 * 1e9 / 365 / 1e6, 1)
