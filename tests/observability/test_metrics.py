"""A real run, scraped by Debian's Prometheus from `onering metrics serve`, read by the dashboards.

January 2013 is materialized Bronze -> Silver -> Gold on the embedded stores, with the run
tags the Airflow bridge sets. `onering metrics serve` (a subprocess on a free loopback port)
exports the instance; Prometheus scrapes it every second with OneRing's alert rules loaded.
Every dashboard panel's PromQL is then evaluated through Prometheus' HTTP API and compared
with what the run made true, counted independently (Bronze Parquet with pyarrow, Silver
and Gold with their own queries, checks from the instance's event log). Every SQL panel runs
against the run's real Silver (chDB) and Gold (embedded Postgres, as ``onering_reader``).

No Grafana server can be installed here (Grafana is in neither Debian's nor PyPI's
registries): the dashboards are validated by running their queries, not by rendering them.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from dagster._core.events import DagsterEventType
from psycopg import sql

from onering_assets.definitions import build_definitions
from onering_assets.observability.panels import CLICKHOUSE, PIPELINE, STORES
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.runner import execute, instance_for
from tests.conftest import layer_keys, settings_for
from tests.observability.prometheus import RULES, free_port, get, prometheus, require, wait_for

pytestmark = pytest.mark.slow
MONTH = "2013-01"
AIRFLOW = {
    "airflow/dag_id": "onering_medallion",
    "airflow/run_id": "manual__2013-01-01",
    "airflow/task_id": "medallion",
    "airflow/try_number": "1",
}
ONERING = Path(sys.executable).with_name("onering")


class Built:
    def __init__(self, settings: Any, instance: dg.DagsterInstance, run_id: str) -> None:
        self.settings, self.instance, self.run_id = settings, instance, run_id

    def silver_count(self, table: str) -> int:
        dsn = f"chdb://{self.settings.clickhouse_dir}"
        with ClickHouseResource(dsn=dsn).session() as client:
            return int(client.query(f"SELECT count() FROM silver.{table}").result_rows[0][0])

    def gold_count(self, table: str) -> int:
        pg = PostgresResource(embedded_dir=str(self.settings.postgres_dir))
        with pg.connect() as conn:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("gold", table))
            row = conn.execute(query).fetchone()
            return int(row[0]) if row else 0

    def bronze_count(self, table: str) -> int:
        files = (self.settings.lake_dir / "bronze" / table).rglob("*.parquet")
        return sum(pq.read_metadata(f).num_rows for f in files)

    def written(self, asset: str) -> int:
        """Rows of the asset's table after a one-month build: what the run wrote."""
        layer, table = asset.split("/")
        count = {"bronze": self.bronze_count, "silver": self.silver_count}.get(layer)
        return (count or self.gold_count)(table)

    def check_outcomes(self) -> list[bool]:
        logs = self.instance.all_logs(self.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        return [bool(e.dagster_event.event_specific_data.passed) for e in logs]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, make_source, flights_jan_feb: pd.DataFrame
) -> Iterator[Built]:
    """January through the medallion, on the state folder's persistent instance.

    Three rows have a departure delay that is not a number: Silver rejects them (well
    under its 5% limit), so the reject panels have something to show.
    """
    january = flights_jan_feb.query("month == '1'").reset_index(drop=True)
    january.loc[[10, 11, 12], "dep_delay"] = "abc"
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source(flights=january))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(settings.dagster_home))  # instance_for sets it
        instance = instance_for(settings)
        summary = execute(
            build_definitions(settings),
            instance,
            assets=layer_keys(settings),
            first=MONTH,
            last=MONTH,
            tags=AIRFLOW,
            progress=False,
        )
        assert summary.success, summary.failures
        yield Built(settings, instance, summary.run_id)


@pytest.fixture(scope="module")
def exporter(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`onering metrics serve` on a free loopback port; yields ``host:port``."""
    require("prometheus")
    port = free_port()
    env = os.environ | {"ONERING_STATE_DIR": str(built.settings.state_dir)}
    env.pop("DAGSTER_HOME", None)
    log = (tmp_path_factory.mktemp("exporter") / "exporter.log").open("w")
    proc = subprocess.Popen(
        [str(ONERING), "metrics", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        target = f"127.0.0.1:{port}"
        wait_for("exporter", lambda: proc.poll() is None and get(f"http://{target}/metrics"))
        yield target
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def prom(exporter: str, tmp_path_factory: pytest.TempPathFactory):
    with prometheus(exporter, tmp_path_factory.mktemp("prometheus")) as server:
        # Two scrapes and a rule evaluation after them.
        wait_for(
            "two scrapes",
            lambda: (
                server.query('count_over_time(up{job="onering"}[1m]) >= 2')
                and server.query('up{job="onering"} == 1')
            ),
        )
        time.sleep(2)
        yield server


def by(result: list[dict[str, Any]], *labels: str) -> dict[Any, float]:
    """``{label value(s): sample}`` of an instant vector."""
    out = {}
    for sample in result:
        key = tuple(sample["metric"].get(label, "") for label in labels)
        out[key[0] if len(key) == 1 else key] = float(sample["value"][1])
    return out


# ---------------------------------------------------------------- one assertion per panel


def rows_written(built: Built, result: list) -> None:
    values = by(result, "asset")
    assets = {"/".join(k.path) for k in layer_keys(built.settings)}
    assert set(values) == assets
    assert values == {asset: built.written(asset) for asset in assets}


def checks_by_outcome(built: Built, result: list) -> None:
    outcomes = built.check_outcomes()
    expected = {"passed": outcomes.count(True), "failed": outcomes.count(False)}
    assert by(result, "status") == {k: n for k, n in expected.items() if n}
    assert expected["passed"] > 0


def failing_blocking_checks(built: Built, result: list) -> None:
    assert result == []  # the run succeeded: no blocking check failed


def check_history(built: Built, result: list) -> None:
    logs = built.instance.all_logs(built.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [e.dagster_event.event_specific_data for e in logs]  # type: ignore[union-attr]
    expected = {("/".join(e.asset_key.path), e.check_name): float(e.passed) for e in evaluations}  # type: ignore[union-attr]
    assert by(result, "asset", "check") == expected


def runs_by_status(built: Built, result: list) -> None:
    assert by(result, "status") == {"success": 1}


def mean_run_duration(built: Built, result: list) -> None:
    (record,) = built.instance.get_run_records()
    expected = record.end_time - record.start_time  # type: ignore[operator]
    assert by(result, "status") == {"success": pytest.approx(expected, abs=1e-3)}


def mean_step_duration(built: Built, result: list) -> None:
    stats = built.instance.get_run_step_stats(built.run_id)
    expected = {s.step_key: s.end_time - s.start_time for s in stats}  # type: ignore[operator]
    assert by(result, "step") == pytest.approx(expected, abs=1e-3)


def silver_reject_rate(built: Built, result: list) -> None:
    rates = by(result, "asset")
    assert set(rates) == {
        f"silver/{t}" for t in ("airlines", "airports", "flights", "planes", "weather")
    }
    assert rates["silver/flights"] > 0  # the planted rows
    for asset, rate in rates.items():
        table = asset.split("/")[1]
        rejected, kept = built.silver_count(f"{table}_rejects"), built.silver_count(table)
        if rejected + kept == 0:
            assert math.isnan(rate)
        else:
            assert rate == pytest.approx(rejected / (rejected + kept))


def gold_age(built: Built, result: list) -> None:
    (record,) = built.instance.get_run_records()
    ages = by(result, "asset")
    assert set(ages) == {
        "gold/airport_daily_weather",
        "gold/carrier_monthly_performance",
        "gold/route_performance",
    }
    assert all(0 <= age <= time.time() - record.start_time + 5 for age in ages.values())  # type: ignore[operator]


def lock_waits(built: Built, result: list) -> None:
    """Each asset's waits as its materialization recorded them (a month's metadata is the
    run's: counted once), read from the event log."""
    logs = built.instance.all_logs(built.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    expected: dict[tuple[str, str], float] = {}
    for entry in logs:
        mat = entry.asset_materialization
        assert mat is not None
        if "lock_wait_seconds" not in mat.metadata:  # took no lock
            continue
        waits = mat.metadata["lock_wait_seconds"].value
        assert isinstance(waits, dict)
        for kind, seconds in waits.items():
            expected[("/".join(mat.asset_key.path), kind)] = float(seconds)  # type: ignore[arg-type]
    got = by(result, "asset", "lock")
    assert set(got) == set(expected) and ("silver/flights", "publish") in got
    assert all(abs(got[k] - expected[k]) < 1e-6 for k in expected), (got, expected)


def airflow_tasks(built: Built, result: list) -> None:
    tagged = (AIRFLOW["airflow/dag_id"], AIRFLOW["airflow/task_id"], "success")
    assert by(result, "dag_id", "task_id", "status") == {tagged: 1}


EXPECTED: dict[str, Callable[[Built, list], None]] = {
    "Rows written per asset": rows_written,
    "Check evaluations by outcome": checks_by_outcome,
    "Failing blocking checks": failing_blocking_checks,
    "Check history": check_history,
    "Runs by status": runs_by_status,
    "Mean run duration": mean_run_duration,
    "Mean step duration": mean_step_duration,
    "Silver reject rate": silver_reject_rate,
    "Gold age": gold_age,
    "Store lock waits": lock_waits,
    "Airflow bridge tasks": airflow_tasks,
}


def test_every_prometheus_panel_shows_what_the_run_made_true(built: Built, prom) -> None:
    assert set(EXPECTED) == {p.title for p in PIPELINE}
    for panel in PIPELINE:
        EXPECTED[panel.title](built, prom.query(panel.expr))


def test_the_reject_ratio_of_the_latest_build_is_the_tables(built: Built, prom) -> None:
    """One build so far: ``latest`` is its share of rejects, and there is no ``previous``."""
    ratios = by(prom.query("onering_reject_ratio"), "asset", "build")
    assert {build for _, build in ratios} == {"latest"}
    assert ratios[("silver/flights", "latest")] > 0  # the planted rows
    for (asset, _), ratio in ratios.items():
        table = asset.split("/")[1]
        rejected, kept = built.silver_count(f"{table}_rejects"), built.silver_count(table)
        assert ratio == pytest.approx(rejected / (rejected + kept))


def test_no_alert_fires_on_a_clean_run(prom) -> None:
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 3 and all(r["health"] == "ok" for r in rules), rules
    assert all(r["state"] == "inactive" for r in rules if r["type"] == "alerting"), rules
    assert prom.query("ALERTS") == []
    declared = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    for rule in declared:
        if "alert" in rule:
            assert prom.query(rule["expr"]) == [], rule["alert"]


def test_every_sql_panel_reads_the_real_silver_and_gold(built: Built) -> None:
    results = {}
    for panel in STORES:
        if panel.datasource == CLICKHOUSE:
            dsn = f"chdb://{built.settings.clickhouse_dir}"
            with ClickHouseResource(dsn=dsn).session() as client:
                results[panel.title] = [tuple(r) for r in client.query(panel.sql).result_rows]
        else:
            pg = PostgresResource(embedded_dir=str(built.settings.postgres_dir), role="reader")
            with pg.connect() as conn:
                results[panel.title] = conn.execute(panel.sql).fetchall()  # type: ignore[arg-type]
    kept = {t: (k, r) for t, k, r in results["Silver rows kept and rejected"]}
    assert kept["flights"] == (built.silver_count("flights"), built.silver_count("flights_rejects"))
    rejects = sum(r for _, r in kept.values())
    assert sum(n for *_, n in results["Silver rejects by reason"]) == rejects
    assert ("flights", "invalid dep_delay", 3) in results["Silver rejects by reason"]
    carriers = results["Carrier monthly performance"]
    assert sum(row[3] for row in carriers) == kept["flights"][0]
    assert {str(row[0])[:7] for row in carriers} == {MONTH}
    routes = results["Busiest routes"]
    assert len(routes) == 20
    assert [r[2] for r in routes] == sorted((r[2] for r in routes), reverse=True)
    daily = results["Daily departures and weather"]
    assert {str(row[0])[:7] for row in daily} == {MONTH}
    assert sum(row[2] for row in daily) == kept["flights"][0]
    assert set(results) == {p.title for p in STORES}
