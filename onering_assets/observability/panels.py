"""Every dashboard panel's query, declared once: the generator renders them, tests run them.

Prometheus panels read the ``onering_*`` metrics; SQL panels read the stores themselves:
Silver on ClickHouse and Gold on Postgres (as the read-only ``onering_reader``). Check
history is not in the stores (Dagster's instance holds it), so it is a Prometheus panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PROMETHEUS, CLICKHOUSE, GOLD = "onering-prometheus", "onering-clickhouse", "onering-gold"
SILVER_TABLES = ("airlines", "airports", "flights", "planes", "weather")


@dataclass(frozen=True)
class PromPanel:
    title: str
    expr: str
    legend: str
    kind: Literal["stat", "table", "timeseries"] = "timeseries"
    unit: str = "short"
    description: str = ""


@dataclass(frozen=True)
class SqlPanel:
    title: str
    datasource: str
    sql: str
    description: str = ""


def _silver_union(select: str) -> str:
    """One ``SELECT`` per Silver table (``{t}`` is the table), joined by ``UNION ALL``."""
    return "\nUNION ALL\n".join(select.format(t=t) for t in SILVER_TABLES) + "\nORDER BY 1"


REJECTED = 'sum by (asset) (onering_rows_rejected_total{layer="silver"})'
KEPT = 'sum by (asset) (onering_rows_written_total{layer="silver"})'

PIPELINE: tuple[PromPanel, ...] = (
    PromPanel(
        "Rows written per asset",
        "sum by (asset) (onering_rows_written_total)",
        "{{asset}}",
        kind="table",
        description="Rows each asset wrote, summed over the runs the instance remembers.",
    ),
    PromPanel(
        "Check evaluations by outcome",
        "sum by (status) (onering_check_evaluations_total)",
        "{{status}}",
        kind="stat",
    ),
    PromPanel(
        "Failing blocking checks",
        'onering_check_passed{blocking="true"} == 0',
        "{{asset}} {{check}}",
        kind="table",
        description="Blocking checks whose latest evaluation failed (empty when all pass).",
    ),
    PromPanel(
        "Check history",
        "onering_check_passed",
        "{{asset}} {{check}}",
        description="Each check's latest outcome over time: 1 passed, 0 failed.",
    ),
    PromPanel("Runs by status", "sum by (status) (onering_runs)", "{{status}}", kind="stat"),
    PromPanel(
        "Mean run duration",
        "sum by (status) (onering_run_duration_seconds_sum)"
        " / sum by (status) (onering_run_duration_seconds_count)",
        "{{status}}",
        unit="s",
    ),
    PromPanel(
        "Mean step duration",
        "sum by (step) (onering_step_duration_seconds_sum)"
        " / sum by (step) (onering_step_duration_seconds_count)",
        "{{step}}",
        unit="s",
    ),
    PromPanel(
        "Silver reject rate",
        f"{REJECTED} / ({REJECTED} + {KEPT})",
        "{{asset}}",
        unit="percentunit",
        description="Rows rejected into the rejects tables of all rows each Silver build read.",
    ),
    PromPanel(
        "Gold age",
        'time() - onering_asset_last_materialization_timestamp_seconds{layer="gold"}',
        "{{asset}}",
        unit="s",
        description="Time since each Gold mart was last materialized (alert: over 26 h).",
    ),
    PromPanel(
        "Store lock waits",
        "sum by (asset, lock) (onering_store_lock_wait_seconds_total)",
        "{{asset}} {{lock}}",
        kind="table",
        unit="s",
        description="Seconds materializing steps waited for store and publication locks.",
    ),
    PromPanel(
        "Airflow bridge tasks",
        "sum by (dag_id, task_id, status) (onering_airflow_task_runs_total)",
        "{{dag_id}}.{{task_id}} {{status}}",
        kind="table",
    ),
)

STORES: tuple[SqlPanel, ...] = (
    SqlPanel(
        "Silver rows kept and rejected",
        CLICKHOUSE,
        _silver_union(
            "SELECT '{t}' AS table, (SELECT count() FROM silver.{t}) AS kept, "
            "(SELECT count() FROM silver.{t}_rejects) AS rejected"
        ),
    ),
    SqlPanel(
        "Silver rejects by reason",
        CLICKHOUSE,
        _silver_union(
            "SELECT '{t}' AS table, _reject_reason AS reason, count() AS rows "
            "FROM silver.{t}_rejects GROUP BY _reject_reason"
        ),
        description="Empty when no row was rejected.",
    ),
    SqlPanel(
        "Carrier monthly performance",
        GOLD,
        "SELECT month, carrier, carrier_name, flights, cancelled, avg_dep_delay, avg_arr_delay\n"
        "FROM gold.carrier_monthly_performance ORDER BY month, carrier",
    ),
    SqlPanel(
        "Busiest routes",
        GOLD,
        "SELECT origin, dest, flights, avg_arr_delay, avg_distance\n"
        "FROM gold.route_performance ORDER BY flights DESC, origin, dest LIMIT 20",
    ),
    SqlPanel(
        "Daily departures and weather",
        GOLD,
        "SELECT day, origin, flights, avg_dep_delay, avg_precip, avg_visib\n"
        "FROM gold.airport_daily_weather ORDER BY day, origin",
    ),
)
