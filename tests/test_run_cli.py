"""What `onering materialize` and `check` print: verdict, rejects, skipped, per-check rows."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from onering_assets.cli import app
from tests.conftest import MEDALLION_SELECTION

pytestmark = pytest.mark.slow
FLIGHTS = 'key:"silver/flights"'


def invoker(state: Path, source: Path):
    env = {
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(source),
        "DAGSTER_HOME": str(state / "dagster"),
        "COLUMNS": "250",
    }
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_source, flights_jan_feb: pd.DataFrame):
    """January built from a source with three bad values; the state and its source."""
    bad = flights_jan_feb.copy()
    bad.loc[[10, 11], "dep_delay"] = "abc"
    bad.loc[20, "carrier"] = ""
    state = tmp_path_factory.mktemp("state")
    invoke = invoker(state, make_source(flights=bad))
    around = f"+{FLIGHTS}+ and ({MEDALLION_SELECTION})"  # one month cannot train the model
    result = invoke("materialize", "--select", around, "--partition", "2013-01")
    assert result.exit_code == 0, result.output
    return state, invoke, result


def test_a_run_names_rejects_by_reason_and_the_query_to_see_them(built) -> None:
    _, invoke, result = built
    out = result.stdout
    assert out.splitlines()[0].startswith("materialized: done in ")
    assert (
        "silver/flights: 3 rejected in all; this run: invalid dep_delay 2, missing key: carrier 1"
        in out
    )
    query = (
        "SELECT _partition, _reject_reason, _raw FROM silver.flights_rejects"
        " WHERE _partition = '2013-01'"
    )
    assert f'onering sql "{query}"' in out
    shown = invoke("sql", query, "--format", "csv")
    assert shown.exit_code == 0, shown.output
    assert len(shown.stdout.strip().splitlines()) == 1 + 3  # header and the three rows


def test_the_scope_line_says_which_assets_are_built_whole(built) -> None:
    _, _, result = built
    assert "monthly for 2013-01" in result.stderr
    assert "built whole (" in result.stderr and "silver/airlines" in result.stderr
    assert any(line.startswith("source: ") for line in result.stderr.splitlines())


def test_months_for_only_unpartitioned_assets_are_refused_in_one_line(built) -> None:
    _, invoke, _ = built
    for args in (("--partition", "2013-03"), ("--from", "2013-01", "--to", "2013-02")):
        result = invoke("materialize", "--select", 'key:"bronze/airlines"', *args)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [
            "error: bronze/airlines is not partitioned (built whole every time): drop "
            "--partition/--from/--to."
        ]


def test_a_failed_run_says_failed_once_per_check_and_lists_what_was_skipped(
    built, make_source, flights_jan_feb: pd.DataFrame
) -> None:
    state, _, _ = built
    bad = flights_jan_feb.copy()
    bad.loc[bad.index % 10 == 0, "arr_delay"] = "late"  # 10 %: over the 5 % limit
    invoke = invoker(state, make_source(flights=bad))
    result = invoke(
        "materialize", "--select", f'{FLIGHTS}+ or key:"bronze/flights"', "--partition", "2013-01"
    )
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert out.splitlines()[0].startswith("materialized: FAILED in ")
    assert out.count("reject_rate") == 1, out
    assert "silver.flights_rejects_failed WHERE _run_id = '" in out
    (skipped,) = [line for line in out.splitlines() if line.startswith("not materialized")]
    assert "gold/carrier_monthly_performance" in skipped and "silver" not in skipped
    assert "DagsterAssetCheckFailedError" not in result.output and "Traceback" not in result.output
    assert "  skipped gold__carrier_monthly_performance (upstream failed)" in result.stderr


def test_check_prints_one_row_per_check_and_takes_a_month(built) -> None:
    _, invoke, _ = built
    result = invoke("check", "--select", FLIGHTS, "--partition", "2013-01")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "silver/flights" in line]
    assert len(rows) == 8, result.stdout
    assert any("reconciliation" in r and "passed" in r and "bronze 27004" in r for r in rows)
    other = invoke("check", "--select", FLIGHTS, "--partition", "2013-02")
    assert other.exit_code == 1, other.output
    assert "silver.flights for 2013-02 has not been materialized yet" in other.stdout
    assert other.stderr.count("column_schema") == 1, other.stderr  # one line per failure
