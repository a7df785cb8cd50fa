"""The neutral lineage document and `onering lineage show`, from the real definitions.

The graph part needs no state (it is read from the declarations); the run part comes from
a real run of the airlines tables (unpartitioned, 16 rows) on the embedded stores, tagged
as the Airflow bridge tags the runs it triggers, and a second run whose key check fails.
Expected counts come from the definitions (one entity per materializable asset), not from
numbers written here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onering_assets.cli import app
from onering_assets.definitions import build_definitions
from onering_assets.lineage.airflow import airflow_dags
from onering_assets.lineage.document import SERVICES, build_document, dumps
from onering_assets.lineage.runs import run_records
from onering_assets.lineage.show import lineage_lines
from onering_assets.runner import instance_for
from onering_assets.settings import PLATFORM_DIR
from tests.conftest import settings_for
from tests.lineage.airlines_runs import document_of

MODEL = "ml/flight_late_arrival"


@pytest.fixture(scope="module")
def state(airlines_state: Path) -> Path:
    """A state with one good run (tagged as Airflow's) and one run whose key check fails."""
    return airlines_state


@pytest.fixture(scope="module")
def document(state: Path) -> dict:
    return document_of(state)


@pytest.fixture(scope="module")
def asset_keys(state: Path) -> list[str]:
    """Every materializable asset of the real definitions."""
    graph = build_definitions(settings_for(state, None)).resolve_asset_graph()
    return sorted(k.to_user_string() for k in graph.materializable_asset_keys)


def entity(document: dict, key: str) -> dict:
    return next(e for e in document["entities"] if e["key"] == key)


def edge(document: dict, source: str, target: str) -> dict:
    return next(e for e in document["edges"] if e["from"] == source and e["to"] == target)


def test_services_and_entity_names_follow_the_catalog_conventions(
    document: dict, asset_keys: list[str]
) -> None:
    assert document["version"] == 1
    services = {s["name"]: (s["kind"], s["type"]) for s in document["services"]}
    assert services == {
        "onering_lake": ("storage", "S3"),
        "onering_clickhouse": ("database", "Clickhouse"),
        "onering_postgres": ("database", "Postgres"),
        "onering_dagster": ("pipeline", "Dagster"),
        "onering_airflow": ("pipeline", "Airflow"),
        "onering_feast": ("featureStore", "Feast"),
        "onering_mlflow": ("mlmodel", "Mlflow"),
    }
    assert set(services) == set(SERVICES)
    fqns = {e["key"]: (e["entity"], e["fqn"]) for e in document["entities"]}
    assert sorted(fqns) == asset_keys  # one entity per materializable asset
    assert {e["service"] for e in document["entities"]} <= set(services)
    assert fqns["bronze/flights"] == ("container", "onering_lake.bronze.flights")
    assert fqns["silver/flights"] == ("table", "onering_clickhouse.clickhouse.silver.flights")
    assert fqns["gold/route_performance"] == (
        "table",
        "onering_postgres.onering.gold.route_performance",
    )
    # Features and ML assets: where they are stored.
    assert fqns["features/route_stats_source"] == (
        "container",
        "onering_lake.features.route_stats",
    )
    assert fqns["features/route_stats"] == ("featureView", "onering_feast.onering.route_stats")
    assert fqns["ml/training_set"] == ("container", "onering_lake.ml.training_set")
    assert fqns["ml/drift_report"] == ("container", "onering_lake.ml.drift_report")
    assert fqns[MODEL] == ("mlmodel", "onering_mlflow.flight_late_arrival")


def test_the_model_lists_its_features_and_where_each_is_read(document: dict) -> None:
    model = entity(document, MODEL)
    details = model["mlmodel"]
    assert (details["algorithm"], details["target"]) == ("LogisticRegression", "late")
    views = {e["name"]: e for e in document["entities"] if e["entity"] == "featureView"}
    by_fqn = {e["fqn"]: e for e in document["entities"]}
    features = {f["name"]: f for f in details["features"]}
    # Every feature of every view is a numerical model feature, read from the view's rows.
    for name, view in views.items():
        source = by_fqn[f"onering_lake.features.{name}"]
        for column in view["columns"]:
            feature = features[column["name"]]
            assert (feature["type"], feature["view"]) == ("numerical", name)
            assert feature["sources"] == [{"entity": source["fqn"], "column": column["name"]}]
    # The request fields come from silver.flights; the derived ones from sched_dep_at.
    flights = by_fqn["onering_clickhouse.clickhouse.silver.flights"]
    for name, column, kind in (
        ("carrier", "carrier", "categorical"),
        ("dest", "dest", "categorical"),
        ("dep_hour", "sched_dep_at", "numerical"),
        ("day_of_week", "sched_dep_at", "numerical"),
    ):
        assert features[name]["type"] == kind and features[name]["view"] is None
        assert features[name]["sources"] == [{"entity": flights["fqn"], "column": column}]
    # Every source names an entity of the document and one of its columns.
    for feature in details["features"]:
        for source in feature["sources"]:
            assert source["column"] in {c["name"] for c in by_fqn[source["entity"]]["columns"]}
    assert len(features) == len(details["features"])  # no feature twice


def test_edges_through_feast_views_and_into_the_model_pair_columns_by_name(
    document: dict,
) -> None:
    view = entity(document, "features/carrier_stats")
    names = [c["name"] for c in view["columns"]]
    served = edge(document, "features/carrier_stats_source", "features/carrier_stats")
    joined = edge(document, "features/carrier_stats", "ml/training_set")
    for step in (served, joined):
        assert step["columns"] == [{"to": n, "from": [n]} for n in sorted(names)]
    trained = edge(document, "ml/training_set", MODEL)
    features = [f["name"] for f in entity(document, MODEL)["mlmodel"]["features"]]
    assert trained["columns"] == [{"to": n, "from": [n]} for n in sorted(features)]
    assert trained["pipelines"] == [
        {"pipeline": "onering_airflow.onering_ml", "task": "ml__flight_late_arrival"},
        {"pipeline": "onering_dagster.onering", "task": "ml__flight_late_arrival"},
    ]
    # Edges with SQL still take their pairs from it only (none guessed by name).
    assert edge(document, "silver/flights", "ml/training_set")["columns"] == []


def test_entities_carry_columns_types_owners_tags_and_checks(document: dict) -> None:
    flights = entity(document, "silver/flights")
    columns = {c["name"]: c for c in flights["columns"]}
    assert columns["dep_delay"]["type"] == "Nullable(Int32)"
    assert "←" not in columns["dep_delay"]["description"]  # lineage is in the edges
    assert columns["_batch_id"]["type"] == "String"  # the ingestion columns are real columns
    assert "_raw" not in columns and "_reject_reason" not in columns  # the rejects table's
    assert flights["owners"] and flights["tags"]["layer"] == "silver"
    assert {"key_unique", "reconciliation", "reject_rate"} <= {c["name"] for c in flights["checks"]}
    gold = {c["name"]: c["type"] for c in entity(document, "gold/route_performance")["columns"]}
    assert "double precision" in gold.values()  # Gold types are Postgres types


def test_edges_carry_column_lineage_sql_and_every_producing_task(document: dict) -> None:
    mart = edge(document, "silver/flights", "gold/carrier_monthly_performance")
    pairs = {p["to"]: p["from"] for p in mart["columns"]}
    assert pairs["avg_dep_delay"] == ["dep_delay"]
    assert pairs["avg_arr_delay"] == ["arr_delay"]
    assert "carrier_monthly_performance" not in (mart["sql"] or "")  # the SELECT, as declared
    assert (
        PLATFORM_DIR / "analytics/clickhouse/gold/carrier_monthly_performance.sql"
    ).read_text().strip() == mart["sql"]
    assert mart["pipelines"] == [
        {"pipeline": "onering_airflow.onering_gold", "task": "gold__carrier_monthly_performance"},
        {"pipeline": "onering_dagster.onering", "task": "gold__carrier_monthly_performance"},
    ]
    landed = edge(document, "bronze/flights", "silver/flights")
    assert {p["to"] for p in landed["columns"]} <= {
        c["name"] for c in entity(document, "silver/flights")["columns"]
    }


def test_the_stream_writes_into_bronze_flights_which_silver_reads(document: dict) -> None:
    """The stream asset lands its batches in Bronze flights' months: an edge marked
    ``writes``, produced by the stream's tasks (not Bronze's), so Silver's lineage shows it."""
    writes = [e for e in document["edges"] if e.get("writes")]
    assert [(e["from"], e["to"]) for e in writes] == [("stream/flights_events", "bronze/flights")]
    assert writes[0]["pipelines"] == [
        {"pipeline": "onering_airflow.onering_stream", "task": "stream__flights_events"},
        {"pipeline": "onering_dagster.onering", "task": "stream__flights_events"},
    ]
    assert writes[0]["columns"] == []  # the stream's entity is its ledger, not the rows
    lines = lineage_lines(document, "silver/flights", direction="upstream")
    assert lines[-1] == (
        "    └── stream/flights_events  (container onering_lake.stream.flights_events)"
        "  writes its rows into bronze/flights"
    )


def test_airflow_pipelines_are_the_exported_dags(document: dict) -> None:
    """The Airflow pipelines and their tasks are exactly the committed DAG plans'."""
    dags_dir = PLATFORM_DIR / "orchestration/airflow/dags"
    expected = {}
    for path in sorted(dags_dir.glob("*.plan.json")):
        plan = json.loads(path.read_text())["plan"]
        expected[f"onering_airflow.{plan['dag_id']}"] = {t["task_id"] for t in plan["tasks"]}
    got = {
        p["fqn"]: {t["name"] for t in p["tasks"]}
        for p in document["pipelines"]
        if p["service"] == "onering_airflow"
    }
    assert got == expected
    dagster = next(p for p in document["pipelines"] if p["service"] == "onering_dagster")
    assert len(dagster["tasks"]) == len(document["entities"])  # one task per asset
    downstream = {t["name"]: t["downstream"] for t in dagster["tasks"]}
    assert downstream["bronze__flights"] == ["silver__flights"]
    assert downstream["silver__flights"] == [
        "features__carrier_stats_source",
        "features__route_stats_source",
        "gold__airport_daily_weather",
        "gold__carrier_monthly_performance",
        "gold__route_performance",
        "ml__training_set",
        "stream__delay_streaks",
        "stream__departures_hourly",
    ]
    assert downstream["gold__route_performance"] == []
    assert downstream["ml__flight_late_arrival"] == ["ml__drift_report"]


def test_runs_carry_status_times_pipeline_and_check_results(document: dict) -> None:
    airflow, plain = document["runs"]
    assert airflow["pipeline"] == "onering_airflow.onering_silver"
    assert airflow["execution_id"] == "scheduled__2013-01"
    assert airflow["status"] == "SUCCESS"
    assert [t["name"] for t in airflow["tasks"]] == ["silver__airlines"]
    assert {s["name"] for s in airflow["steps"]} == {"bronze__airlines", "silver__airlines"}
    assert airflow["start"] < airflow["end"]
    rows = {m["asset"]: m["rows"] for m in airflow["materializations"]}
    assert rows == {"bronze/airlines": 16, "silver/airlines": 16}
    assert all(c["passed"] for c in airflow["checks"])
    assert plain["pipeline"] == "onering_dagster.onering"
    assert plain["execution_id"] == plain["run_id"]
    assert plain["status"] == "FAILURE"
    failed = [(c["asset"], c["name"]) for c in plain["checks"] if not c["passed"]]
    assert failed == [("bronze/airlines", "ge_suite")]  # the duplicate airline code
    assert "silver/airlines" not in {m["asset"] for m in plain["materializations"]}


def test_the_document_is_deterministic_and_holds_no_machine_paths(
    state: Path, document: dict
) -> None:
    settings = settings_for(state, None)
    defs = build_definitions(settings)
    again = build_document(defs, dags=airflow_dags(defs), runs=run_records(instance_for(settings)))
    text = dumps(document)
    assert dumps(again) == text
    for leak in (str(state), str(Path.home()), str(PLATFORM_DIR.parent), "password", "file://"):
        assert leak not in text, leak
    assert not re.search(r"/tmp/|/work/|/home/|/root/", text)


def test_show_prints_the_upstream_tree_with_columns(document: dict) -> None:
    lines = lineage_lines(
        document, "gold/carrier_monthly_performance", direction="upstream", column="avg_dep_delay"
    )
    assert lines == [
        "gold/carrier_monthly_performance  (table "
        "onering_postgres.onering.gold.carrier_monthly_performance)",
        "upstream:",
        "└── silver/flights  (table onering_clickhouse.clickhouse.silver.flights)",
        "      avg_dep_delay ← dep_delay",
        "    └── bronze/flights  (container onering_lake.bronze.flights)",
        "          dep_delay ← dep_delay",
    ]


def test_show_says_why_a_counted_column_has_no_source(document: dict) -> None:
    lines = lineage_lines(
        document, "gold/route_performance", direction="upstream", column="flights"
    )
    assert lines[2] == "    (none: flights reads no column of another table, e.g. count())"


def test_show_traces_a_model_feature_to_its_feature_rows(document: dict) -> None:
    lines = lineage_lines(document, MODEL, direction="upstream", column="route_distance")
    assert lines == [
        "ml/flight_late_arrival  (mlmodel onering_mlflow.flight_late_arrival)",
        "upstream:",
        "└── ml/training_set  (container onering_lake.ml.training_set)",
        "      route_distance ← route_distance",
        "    └── features/route_stats  (featureView onering_feast.onering.route_stats)",
        "          route_distance ← route_distance",
        "        └── features/route_stats_source  (container onering_lake.features.route_stats)",
        "              route_distance ← route_distance",
    ]
    with pytest.raises(KeyError):
        lineage_lines(document, MODEL, column="arr_delay")  # a training column, not a feature


def test_show_prints_both_sides_and_none(document: dict) -> None:
    lines = lineage_lines(document, "bronze/planes")
    assert lines[1] == "upstream:" and lines[2] == "    (none)"
    assert lines[3] == "downstream:"
    assert lines[4].startswith("└── silver/planes")


def test_cli_lineage_show_and_its_errors(state: Path) -> None:
    env = {"ONERING_STATE_DIR": str(state), "COLUMNS": "200"}
    runner = CliRunner()
    shown = runner.invoke(app, ["lineage", "show", "gold/route_performance", "--upstream"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "└── silver/flights" in shown.stdout or "├── silver/flights" in shown.stdout
    unknown = runner.invoke(app, ["lineage", "show", "gold/route_perf"], env=env)
    assert unknown.exit_code == 3 and "did you mean gold/route_performance" in unknown.stderr
    column = runner.invoke(app, ["lineage", "show", "gold/route_performance", "-c", "x"], env=env)
    assert column.exit_code == 2 and "has no column 'x'" in column.stderr
    both = runner.invoke(
        app, ["lineage", "show", "gold/route_performance", "--upstream", "--downstream"], env=env
    )
    assert both.exit_code == 2
    model = runner.invoke(app, ["lineage", "show", MODEL, "--upstream"], env=env)
    assert model.exit_code == 0, model.output
    lines = model.stdout.splitlines()
    assert lines[:3] == [
        "ml/flight_late_arrival  (mlmodel onering_mlflow.flight_late_arrival)",
        "upstream:",
        "└── ml/training_set  (container onering_lake.ml.training_set)",
    ]
    for source in ("carrier_stats", "origin_weather", "route_stats"):
        assert f"features/{source}_source  (container onering_lake.features.{source})" in (
            model.stdout
        )
    assert "downstream:" not in model.stdout and "drift_report" not in model.stdout


def test_cli_lineage_document_writes_the_same_document(state: Path, tmp_path: Path) -> None:
    env = {"ONERING_STATE_DIR": str(state), "COLUMNS": "200"}
    out = tmp_path / "lineage.json"
    result = CliRunner().invoke(app, ["lineage", "document", "--runs", "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written == json.loads(dumps(document_of(state)))
    assert len(written["runs"]) == 2
    counts = f"{len(written['entities'])} entities, {len(written['edges'])} edges, 2 runs"
    assert counts in result.stdout
