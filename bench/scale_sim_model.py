"""Scale simulation, the capacity model: a year of 1 billion flights from rates measured on
this 2-core machine, so every number ``docs/scaling.md`` quotes is recomputed by the bench.

The rates are not measured here: they are quoted from ``docs/performance.md`` (each constant
names its table). The bytes per row and the Airflow counts are this bench's own
(``scale_sim_storage``, ``scale_sim_backfill``). Everything else is arithmetic on the two.
"""

from __future__ import annotations

from typing import Any

FLIGHTS_PER_YEAR = 1_000_000_000
CORES = 2  # the machine every rate below was measured on
FLIGHTS_10X = 3_367_760  # bench/generate.py --scale 10
# docs/performance.md, "The engine floor" table (05:20 UTC) and its re-measure (06:11 UTC),
# seconds at 10x: (low, high) over the two runs.
DAGSTER_S = {"bronze": (8.92, 12.11), "silver": (8.78, 10.75), "gold": (2.08, 2.12)}
FLOOR_S = {"bronze": (3.60, 4.08), "silver": (6.80, 9.46), "gold": (0.23, 0.24)}
# docs/performance.md, "Bronze, the largest gap, profiled": the flights asset's own work.
BRONZE_WORK_S = 5.18
# docs/performance.md, "Engines": Bronze parse of the 10x file, Spark local[2] and Arrow.
SPARK_PARSE_S, ARROW_PARSE_S = 56.34, 4.15
# docs/performance.md, the floor's Silver flights at 10x: one statement 5 GB peak RSS.
SILVER_AT_ONCE_GB = 5.0
# DESIGN.md / docs/architecture.md: chDB's carrier-by-month aggregate over 3.4 M rows.
AGGREGATE_S = 0.11
# docs/performance.md, "Airflow bridge": per-task overhead of each execution mode, seconds.
TASK_OVERHEAD_S = {
    "in_process (preloaded worker)": 0.66,
    "in_process, no preload": 2.23,
    "subprocess": 2.77,
    "dagster_graphql": 4.35,
}


def _span(pair: tuple[float, float], factor: float) -> list[float]:
    return [round(pair[0] * factor, 1), round(pair[1] * factor, 1)]


def model(storage: dict[str, Any] | None, airflow: dict[str, Any] | None) -> dict[str, Any]:
    """The arithmetic of docs/scaling.md: inputs, then what follows from them."""
    scale = FLIGHTS_PER_YEAR / FLIGHTS_10X
    per_day = FLIGHTS_PER_YEAR / 365
    day_scale = per_day / FLIGHTS_10X
    per_month = FLIGHTS_PER_YEAR / 12
    layers = (sum(v[0] for v in DAGSTER_S.values()), sum(v[1] for v in DAGSTER_S.values()))
    floors = (sum(v[0] for v in FLOOR_S.values()), sum(v[1] for v in FLOOR_S.values()))
    gb_per_row = SILVER_AT_ONCE_GB / FLIGHTS_10X
    out: dict[str, Any] = {
        "scale_vs_10x": round(scale, 1),
        "flights_per_day": round(per_day),
        "day_vs_10x": round(day_scale, 3),
        "year_machine_s": {k: _span(v, scale) for k, v in DAGSTER_S.items()}
        | {"three_layers": _span(layers, scale), "floor_three_layers": _span(floors, scale)},
        "year_core_hours_upper": [round(x * CORES / 3600, 1) for x in _span(layers, scale)],
        "day_machine_s": _span(layers, day_scale),
        "bronze_work_rows_per_s_per_core": round(FLIGHTS_10X / BRONZE_WORK_S / CORES),
        "year_core_hours_bronze": {
            "arrow_parse": round(ARROW_PARSE_S * scale * CORES / 3600, 1),
            "spark_parse": round(SPARK_PARSE_S * scale * CORES / 3600, 1),
        },
        "silver_window_gb": {
            "month_at_once": round(per_month * gb_per_row),
            "day_at_once": round(per_day * gb_per_row, 1),
        },
        "aggregate_core_s_per_year": round(AGGREGATE_S * scale * CORES, 1),
    }
    if storage and "bronze_bytes_per_row" in storage:
        bronze, silver = storage["bronze_bytes_per_row"], storage["silver_bytes_per_row"]
        out["storage_gb_per_year"] = {
            "bronze_parquet": round(bronze * FLIGHTS_PER_YEAR / 1e9, 1),
            "silver_on_disk_per_replica": round(silver * FLIGHTS_PER_YEAR / 1e9, 1),
            "silver_uncompressed": round(
                storage["silver_uncompressed_bytes_per_row"] * FLIGHTS_PER_YEAR / 1e9
            ),
        }
        out["bronze_file_mb"] = {
            "daily": round(bronze * per_day / 1e6, 1),
            "monthly": round(bronze * per_month / 1e6),
        }
    if airflow and "task_instances" in airflow:
        per_run = sum(airflow["tasks_per_run"].values())
        grouped = sum(airflow["tasks_per_run_grouped"].values())
        out["airflow"] = {
            "task_instances_per_day": per_run,
            "task_instances_per_year": per_run * 365,
            "backfill_task_instances": airflow["task_instances"],
            "backfill_task_instances_grouped": airflow["task_instances_grouped"],
            "backfill_overhead_hours": {
                mode: {
                    "per_asset": round(airflow["task_instances"] * s / 3600, 1),
                    "per_group": round(airflow["task_instances_grouped"] * s / 3600, 1),
                    "one_ranged_run_per_dag_s": round(per_run * s, 1),
                }
                for mode, s in TASK_OVERHEAD_S.items()
            },
            "ranged_task_instances": per_run,
            "grouped_per_day": grouped,
        }
    return out
