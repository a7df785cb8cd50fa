"""`onering test --create`: a unit test written from live data reads back and passes.

January is built (Bronze flights and airlines, Silver flights) from the test source; the
command then writes tests of silver/airlines (given rows from the Bronze files) and of
gold/route_performance (given rows from the published Silver table) into planted test
files, and `onering test` runs them green. The given rows are exactly the live rows the
filter picks, in landing order; the expected rows are what the table computes from them,
checked here against an independent count. A filter that reads another table (a subquery,
a qualified column, a function that takes a table name), holds a second statement, names an
unknown column, does not parse or matches no row is refused with exit 2, writing nothing.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from typer.testing import CliRunner

from onering_assets.cli import app
from onering_assets.sqltests import spec
from tests.conftest import run, settings_for

ROUTE = "gold/route_performance"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_source) -> tuple[Path, Path]:
    state = tmp_path_factory.mktemp("create-state")
    source = make_source()
    settings = settings_for(state, source)
    keys = {
        dg.AssetKey(k.split("/")) for k in ("bronze/airlines", "bronze/flights", "silver/flights")
    }
    with dg.instance_for_test() as instance:
        summary = run(settings, instance=instance, select=keys, first="2013-01", last="2013-01")
    assert summary.success, summary.failures
    return state, source


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built) -> Path:
    """Test files go to tmp_path; the command reads the built state."""
    state, source = built
    monkeypatch.setenv("ONERING_STATE_DIR", str(state))
    monkeypatch.setenv("ONERING_SOURCE_DIR", str(source))
    monkeypatch.setattr(spec, "test_path", lambda t: tmp_path / f"{t.name}{spec.SUFFIX}")
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, ["test", *args])


def test_a_silver_test_from_the_bronze_files_reads_back_and_passes(planted: Path) -> None:
    result = invoke("--create", "silver/airlines", "--where", "carrier IN ('AA', 'UA')")
    assert result.exit_code == 0, result.output
    (written,) = yaml.safe_load((planted / "airlines.test.yml").read_text())["tests"]
    assert written["given"] == {
        "bronze.airlines": [
            {"carrier": "AA", "name": "American Airlines Inc."},
            {"carrier": "UA", "name": "United Air Lines Inc."},
        ]
    }
    assert written["expect"] == {
        "rows": [
            {"carrier": "AA", "name": "American Airlines Inc."},
            {"carrier": "UA", "name": "United Air Lines Inc."},
        ],
        "rejects": [],
    }
    ran = invoke("--select", 'key:"silver/airlines"')
    assert ran.exit_code == 0 and "1 passed, 0 failed" in ran.output, ran.output


def test_a_gold_test_from_published_silver_reads_back_and_passes(
    planted: Path, flights_jan_feb
) -> None:
    where = "origin = 'JFK' AND dest = 'LAX'"
    result = invoke("--create", ROUTE, "--where", where, "--limit", "5", "--name", "five")
    assert result.exit_code == 0, result.output
    (written,) = yaml.safe_load((planted / "route_performance.test.yml").read_text())["tests"]
    given = written["given"]["silver.flights"]
    assert len(given) == 5 and {(r["origin"], r["dest"]) for r in given} == {("JFK", "LAX")}
    # Only the columns the mart reads, one line per row; the rows are real JFK-LAX flights.
    assert {tuple(sorted(r)) for r in given} == {
        ("air_time", "arr_delay", "dest", "distance", "origin")
    }
    frame = flights_jan_feb.astype(str)
    jan = frame[(frame.month == "1") & (frame.origin == "JFK") & (frame.dest == "LAX")]
    landed = {
        (int(a), int(d)) for a, d in zip(jan.air_time, jan.distance, strict=True) if a.isdigit()
    }
    assert {(r["air_time"], r["distance"]) for r in given if r["air_time"]} <= landed
    text = (planted / "route_performance.test.yml").read_text()
    assert text.count("- {air_time: ") == 5  # one flow-style line per given row
    (row,) = written["expect"]["rows"]
    assert (row["origin"], row["dest"], row["flights"]) == ("JFK", "LAX", 5)
    delays = [r["arr_delay"] for r in given if r["arr_delay"] is not None]
    assert row["avg_arr_delay"] == pytest.approx(sum(delays) / len(delays))
    ran = invoke("--select", f'key:"{ROUTE}"', "--no-postgres")
    assert ran.exit_code == 0 and "1 passed, 0 failed" in ran.output, ran.output
    again = invoke("--create", ROUTE, "--where", where, "--name", "five")
    assert again.exit_code == 2 and "already has a test named 'five'" in again.output


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("silver.planes: 1 = 1", "does not read silver.planes"),
        ("origin IN (SELECT faa FROM silver.airports)", "own columns"),
        ("1; DROP TABLE silver.flights", "is refused"),
        ("silver.flights: nope = 1", "silver.flights has no column nope"),
        ("carier = 'AA'", "applies to no table route_performance reads: no column carier"),
        (
            "(carrier, 'x', _batch_id, _ingested_at, _source, _partition, _row) IN silver.airlines",
            "own columns",
        ),
        ("joinGet('silver.airlines', 'name', carrier) = 'x'", "reads another table"),
        ("dictGet('d', 'name', carrier) = 'x'", "reads another table"),
        ("hasColumnInTable('silver', 'airlines', 'name')", "reads another table"),
        ("f.carrier = 'AA'", "unqualified"),
        ("origin = 'JFK", "does not parse"),
        ("origin = 'XXX'", "No row of silver.flights matches"),
    ],
)
def test_a_filter_that_is_not_one_condition_on_the_table_is_refused(
    planted: Path, where: str, message: str
) -> None:
    result = invoke("--create", ROUTE, "--where", where)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (planted / "route_performance.test.yml").exists()
