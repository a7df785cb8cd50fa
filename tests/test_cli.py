"""The `onering` command end to end, in-process, on the real embedded stores."""

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onering_assets.cli import app

pytestmark = pytest.mark.slow
GOLD_CMP = 'key:"gold/carrier_monthly_performance"'


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, make_source):
    state = tmp_path_factory.mktemp("state")
    env = {
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(make_source()),
        "DAGSTER_HOME": str(state / "dagster"),
        "COLUMNS": "200",
    }
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke, state


@pytest.fixture(scope="module")
def materialized(cli):
    invoke, state = cli
    result = invoke("materialize", "--select", GOLD_CMP, "--partition", "2013-01")
    assert result.exit_code == 0, result.output
    return invoke, state, result


def test_materialize_one_gold_table_builds_only_missing_upstream(materialized) -> None:
    _, state, result = materialized
    assert "also materializing upstream never built" in result.output
    for key in (
        "bronze/flights",
        "silver/flights",
        "silver/airlines",
        "gold/carrier_monthly_performance",
    ):
        assert key in result.output
    assert "gold/route_performance" not in result.output
    assert "0 failed" in result.output
    assert (Path(state) / "dagster" / "dagster.yaml").exists()


def test_second_gold_table_reuses_published_upstream(materialized) -> None:
    invoke, _, _ = materialized
    result = invoke("materialize", "--select", GOLD_CMP, "--partition", "2013-01")
    assert result.exit_code == 0, result.output
    assert "also materializing upstream" not in result.output


def test_sql_formats_and_targets(materialized) -> None:
    invoke, _, _ = materialized
    result = invoke(
        "sql",
        "--target",
        "gold",
        "--format",
        "json",
        "SELECT carrier, flights FROM gold.carrier_monthly_performance WHERE carrier = 'UA'",
    )
    assert json.loads(result.stdout) == [{"carrier": "UA", "flights": 4637}]
    result = invoke(
        "sql", "--target", "silver", "--format", "csv", "SELECT count() AS n FROM silver.flights"
    )
    assert result.stdout.splitlines() == ["n", "27004"]
    table = invoke("sql", "--target", "silver", "SELECT carrier FROM silver.airlines LIMIT 1")
    assert "carrier" in table.stdout and "9E" in table.stdout


@pytest.mark.parametrize(
    ("target", "statement"),
    [
        ("gold", "DELETE FROM gold.carrier_monthly_performance"),
        ("silver", "DROP TABLE silver.flights"),
        ("silver", "INSERT INTO silver.airlines SELECT * FROM silver.airlines"),
        ("gold", "SELECT 1; DELETE FROM gold.route_performance"),
        ("gold", "WITH d AS (DELETE FROM gold.route_performance RETURNING 1) SELECT * FROM d"),
        ("silver", "SELECT * FROM file('/etc/hostname', 'LineAsString')"),
    ],
)
def test_sql_refuses_writes(materialized, target: str, statement: str) -> None:
    """Refusals are one line on stderr with exit 2 (the full table is tests/test_query.py)."""
    invoke, _, _ = materialized
    result = invoke("sql", "--target", target, statement)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == "" and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("target", "statement"),
    [("silver", "SELECT * FROM nonexistent"), ("gold", "SELECT * FROM gold.nonexistent")],
)
def test_sql_store_errors_are_one_line_exit_1(materialized, target: str, statement: str) -> None:
    invoke, _, _ = materialized
    result = invoke("sql", "--target", target, statement)
    assert result.exit_code == 1
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "nonexistent" in result.stderr and "Traceback" not in result.output


def test_sql_table_format_caps_rows(materialized) -> None:
    invoke, _, _ = materialized
    result = invoke("sql", "--target", "silver", "SELECT number FROM numbers(1500)")
    assert result.exit_code == 0
    assert "showing 1,000 of 1,500 rows" in result.stdout


def test_assets_list_and_show(materialized) -> None:
    invoke, _, _ = materialized
    listing = invoke("assets", "list")
    assert listing.exit_code == 0
    assert "gold/route_performance" in listing.stdout and "never" in listing.stdout
    shown = invoke("assets", "show", "gold/carrier_monthly_performance")
    assert shown.exit_code == 0
    for text in ("silver/airlines.name", "pct_arr_delayed_15", "reconciliation", "passed"):
        assert text in shown.stdout


def test_check_alone_passes_on_what_is_published(materialized) -> None:
    invoke, _, _ = materialized
    result = invoke("check", "--select", 'key:"silver/airlines"')
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("materialize", "--partition", "2013-13"), "is not a partition"),
        (("materialize", "--from", "2013-05", "--to", "2013-02"), "is after --to"),
        (("materialize", "--select", 'key:"gold/nope"'), "matches no asset"),
        (("assets", "show", "gold/nope"), "No asset"),
        (("sql", "--target", "bronze", "SELECT 1"), "--target is silver or gold"),
    ],
)
def test_errors_are_one_line_with_a_non_zero_exit(cli, args: tuple[str, ...], message: str) -> None:
    invoke, _ = cli
    result = invoke(*args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("materialize", "--partition", "2013-13"), 2),
        (("materialize", "--select", "key:"), 2),
        (("materialize", "--select", 'key:"gold/nope"'), 3),
        (("airflow", "trigger", "onering_gold", "--select", 'key:"silver/flights"'), 3),
        (("airflow", "trigger", "onering_gold", "--select", "key:"), 2),
    ],
)
def test_bad_input_exits_2_and_an_empty_selection_exits_3(cli, args: tuple[str, ...], code: int):
    """Scripts and the Airflow bridge tell "nothing to do" (3) from invalid input (2).

    `airflow trigger` refuses before it needs a running Airflow: a selection that picks none
    of the DAG's assets would otherwise end "success" with every task skipped.
    """
    invoke, _ = cli
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("command", "what"), [("dev", "the Dagster UI"), ("app", "the Streamlit app")]
)
def test_a_busy_port_is_one_line_not_a_server_traceback(
    tmp_path: Path, command: str, what: str
) -> None:
    """New-user review: another server on the port gave a traceback (or a restart loop)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            app,
            [command, "--port", str(port)],
            env={"ONERING_STATE_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")},
        )
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: cannot start {what} on 127.0.0.1:{port}: ")
    assert "pass another --port" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
