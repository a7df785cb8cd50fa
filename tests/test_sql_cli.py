"""`onering sql` as a new user meets it, on the real embedded chDB and Postgres 18.

Errors are one line on stderr with exit 2 (refused) or 1 (the store failed), never a
traceback; the table is capped and counted, csv/json complete and valid; a closed pipe is
quiet; the stores enforce time and memory limits; a slow reader does not hold the chDB
store; an unbuilt state folder is left as it was (hostile statements: test_query.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from onering_assets.cli import app
from onering_assets.errors import ConfigError
from onering_assets.resources.locks import FileLocks
from onering_assets.settings import PROJECT_ROOT, Settings
from onering_assets.sqlout import CsvText, JsonText, Spool, footer

GOLD = "gold.carrier_monthly_performance"
slow = pytest.mark.slow


def env_for(folder: Path, **extra: str) -> dict[str, str]:
    return {"ONERING_STATE_DIR": str(folder), "DAGSTER_HOME": str(folder / "dagster"), **extra}


def invoke(folder: Path, *args: str, **env: str):
    """The command in this process (CliRunner), stdout and stderr apart."""
    return CliRunner().invoke(
        app, ["sql", *args], env=env_for(folder, **env), catch_exceptions=False
    )


def run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: its own process, the real stderr."""
    return subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "sql", *args],
        env={**os.environ, **env_for(folder, **env)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line_error(code: int, stdout: str, stderr: str, expected_code: int) -> str:
    assert code == expected_code, (code, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stdout + stderr and "Falling back" not in stdout + stderr
    assert stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, make_source) -> Path:
    """January built up to one Gold mart (Silver flights and airlines with it)."""
    folder = tmp_path_factory.mktemp("sqlstate")
    built = CliRunner().invoke(
        app,
        ["materialize", "--select", f'key:"{GOLD.replace(".", "/")}"', "-p", "2013-01"],
        env={**env_for(folder), "ONERING_SOURCE_DIR": str(make_source())},
        catch_exceptions=False,
    )
    assert built.exit_code == 0, built.output
    return folder


@slow
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--target", "silver", "SELECT * FROM nonexistent"), 1, "UNKNOWN_TABLE"),
        (("--target", "silver", "SELECT count() FROM silver.flights FORMAT CSV"), 2, "--format"),
        (("SELECT carrier FROM silver.airlines FORMAT CSV",), 2, "--format"),
        (("--target", "silver", "OPTIMIZE TABLE silver.flights FINAL"), 2, "Only SELECT"),
        (("OPTIMIZE TABLE silver.flights FINAL",), 2, "Only SELECT"),
        (("SHOW TABLES",), 2, "--target"),
        (("SELECT * FROM silver.flights f JOIN gold.x g ON true",), 2, "both silver and gold"),
        (("SELECT * FROM information_schema.tables",), 2, "--target"),
        (("",), 2, "Give a statement"),
        (("-- only a comment",), 2, "Give a SELECT"),
        ((), 2, "Give a statement"),
        (("--target", "bronze", "SELECT 1"), 2, "--target is silver or gold"),
        (("--limit", "-1", "SELECT 1"), 2, "--limit"),
    ],
)
def test_errors_are_one_line_with_exit_2_refused_or_1_failed(
    state: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke(state, *args)
    line = one_line_error(result.exit_code, result.stdout, result.stderr, code)
    assert message in line


@slow
def test_a_real_process_prints_no_sqlglot_warning_or_traceback(state: Path) -> None:
    """Logging and exceptions reach the real stderr only in a process of its own."""
    for args, code in [
        (("SHOW TABLES",), 2),
        (("OPTIMIZE TABLE silver.flights",), 2),
        (("--target", "silver", "SELECT * FROM nonexistent"), 1),
        (("--target", "silver", "SELECT 1 FORMAT CSV"), 2),
    ]:
        done = run(state, *args)
        one_line_error(done.returncode, done.stdout, done.stderr, code)


@slow
def test_the_target_follows_the_schema_the_statement_names(state: Path) -> None:
    silver = invoke(state, "--format", "csv", "SELECT count() AS n FROM silver.airlines")
    assert silver.exit_code == 0, silver.output
    assert int(silver.stdout.splitlines()[1]) > 0
    gold = invoke(state, "--format", "csv", f"SELECT count(*) AS n, current_user FROM {GOLD}")
    assert gold.stdout.splitlines()[1].endswith(",onering_reader"), gold.output
    constant = invoke(state, "--format", "csv", "SELECT current_user")
    assert constant.stdout.splitlines() == ["current_user", "onering_reader"]
    # Unqualified names resolve in the target's schema.
    tables = invoke(state, "--target", "silver", "--format", "csv", "SHOW TABLES")
    assert "flights" in tables.stdout.splitlines(), tables.output
    gold = invoke(state, "--target", "gold", "SELECT count(*) FROM carrier_monthly_performance")
    assert gold.exit_code == 0, gold.output


@slow
def test_table_shows_1000_rows_and_counts_the_rest(state: Path) -> None:
    result = invoke(state, "--target", "silver", "SELECT number FROM numbers(1500)")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == "showing 1,000 of 1,500 rows; --limit 0 for all"
    assert len(lines) == 2 + 1000 + 1  # header, rule, rows, footer
    flights = invoke(state, "SELECT * FROM silver.flights")
    assert flights.stdout.splitlines()[-1] == "showing 1,000 of 27,004 rows; --limit 0 for all"
    gold = invoke(state, "SELECT * FROM generate_series(1, 1200) AS n", "--target", "gold")
    assert gold.stdout.splitlines()[-1] == "showing 1,000 of 1,200 rows; --limit 0 for all"


@slow
@pytest.mark.parametrize("target", ["silver", "gold"])
def test_limit_option(state: Path, target: str) -> None:
    rows = "numbers(1500)" if target == "silver" else "generate_series(0, 1499) AS number"
    statement = f"SELECT number FROM {rows}"
    ten = invoke(state, "--target", target, "--limit", "10", statement).stdout.splitlines()
    assert len(ten) == 13 and ten[-1] == "showing 10 of 1,500 rows; --limit 0 for all"
    every = invoke(state, "--target", target, "--limit", "0", statement).stdout.splitlines()
    assert len(every) == 1503 and every[-1] == "(1,500 rows)"
    csv_all = invoke(state, "--target", target, "--format", "csv", statement).stdout
    assert len(csv_all.splitlines()) == 1501  # csv and json print every row by default
    csv_five = invoke(state, "--target", target, "--format", "csv", "--limit", "5", statement)
    assert len(csv_five.stdout.splitlines()) == 6 and csv_five.stderr == ""


@slow
def test_a_large_result_starts_printing_in_seconds(state: Path) -> None:
    """20 million rows: the table reads 1,001 of them and counts the rest in the store."""
    started = time.monotonic()
    result = invoke(
        state, "--target", "silver", "SELECT number, toString(number) AS s FROM numbers(20000000)"
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "showing 1,000 of 20,000,000 rows; --limit 0 for all"
    assert elapsed < 30, elapsed


@slow
def test_table_rounds_floats_and_csv_keeps_them(state: Path) -> None:
    statement = (
        "SELECT 1/3::float8 AS third, 2.5::float8 AS half, 1e-7::float8 AS tiny, "
        "12345.678912::float8 AS big, NULL::int AS nothing, 'a' || chr(10) || 'b' AS two_lines"
    )
    table = invoke(state, "--target", "gold", statement).stdout.splitlines()
    cells = [c.strip() for c in table[2].split("|")]
    assert cells == ["0.3333", "2.5", "1.000e-07", "12345.6789", "NULL", "a↵b"], table
    assert table[-1] == "(1 row)"
    csv_rows = invoke(state, "--target", "gold", "--format", "csv", statement).stdout
    assert csv_rows.splitlines()[1].startswith("0.3333333333333333,2.5,1e-07,12345.678912,,")


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@slow
def test_json_from_gold_is_valid_json(state: Path) -> None:
    statement = (
        "SELECT 'NaN'::float8 AS n, 'Infinity'::float8 AS i, '-Infinity'::float8 AS ni, "
        "'\\x00ff'::bytea AS b, DATE '2013-01-01' AS d, 1.25::numeric AS dec, "
        "TIMESTAMP '2013-01-01 05:17:00' AS ts, ARRAY['NaN'::float8, 1.5] AS arr, "
        "1 AS a, 2 AS a, NULL AS nothing, true AS yes"
    )
    result = invoke(state, "--target", "gold", "--format", "json", statement)
    assert result.exit_code == 0, result.output
    assert strict_json(result.stdout) == [
        {"n": None, "i": None, "ni": None, "b": "00ff", "d": "2013-01-01", "dec": "1.25",
         "ts": "2013-01-01T05:17:00", "arr": [None, 1.5], "a": 1, "a_2": 2, "nothing": None,
         "yes": True}
    ]  # fmt: skip


@slow
def test_json_from_silver_is_valid_json(state: Path) -> None:
    statement = (
        "SELECT nan AS n, inf AS i, toDate('2013-01-01') AS d, toDecimal64(1.25, 2) AS dec, "
        "toFixedString('ab', 2) AS fs, [1.5, nan] AS arr, map('k', 1) AS m, "
        "toUUID('757435e0-aa31-4a78-b389-c1aa612fb1ff') AS u"
    )
    result = invoke(state, "--target", "silver", "--format", "json", statement)
    assert strict_json(result.stdout) == [
        {"n": None, "i": None, "d": "2013-01-01", "dec": "1.25", "fs": "6162",
         "arr": [1.5, None], "m": {"k": 1}, "u": "757435e0-aa31-4a78-b389-c1aa612fb1ff"}
    ]  # fmt: skip


@slow
@pytest.mark.parametrize("target", ["silver", "gold"])
def test_an_empty_result_keeps_its_columns(state: Path, target: str) -> None:
    statement = {"silver": "SELECT carrier, name FROM silver.airlines WHERE 0",
                 "gold": f"SELECT carrier, flights FROM {GOLD} WHERE false"}[target]  # fmt: skip
    assert strict_json(invoke(state, "--format", "json", statement).stdout) == []
    assert len(invoke(state, "--format", "csv", statement).stdout.splitlines()) == 1
    table = invoke(state, statement).stdout.splitlines()
    assert table[0].split("|")[0].strip() == "carrier" and table[-1] == "(0 rows)"


@pytest.mark.parametrize("text", [CsvText, JsonText])
def test_csv_and_json_are_rendered_batch_by_batch_into_a_spool_on_disk(text) -> None:
    spool = Spool(text=text())
    spool.columns = ["n", "x", "s"]
    for b in range(40):
        spool.add([(b * 10_000 + i, math.nan, f"{i:040d}") for i in range(10_000)])
        assert spool._file.tell() > b * 10_000 * 40  # type: ignore[attr-defined]  # rendered
    spool.finish()
    assert spool._file._rolled  # type: ignore[attr-defined]  # past 16 MB in memory: a file
    writes: list[str] = []
    spool.copy_to(SimpleNamespace(write=writes.append, flush=lambda: None))  # type: ignore[arg-type]
    assert len(writes) > 10 and max(len(w) for w in writes) <= 1024**2
    if text is JsonText:
        parsed = strict_json("".join(writes))
        assert len(parsed) == 400_000 and parsed[0] == {"n": 0, "x": None, "s": "0" * 40}
    else:
        assert "".join(writes).count("\n") == 400_001
    spool.close()


def test_footer_says_more_than_when_the_rest_was_not_counted() -> None:
    spool = Spool(limit=2)
    assert not spool.add([(1,), (2,), (3,)])
    assert footer(spool) == "showing 2 of more than 2 rows; --limit 0 for all"
    spool.total = 3
    assert footer(spool) == "showing 2 of 3 rows; --limit 0 for all"


@slow
@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_closed_pipe_ends_quietly_with_exit_0(state: Path, fmt: str) -> None:
    """`onering sql … | head -1`."""
    rows = 100_000 if fmt == "table" else 1_000_000  # megabytes, past the pipe's buffer
    process = subprocess.Popen(
        [sys.executable, "-m", "onering_assets.cli", "sql", "--format", fmt, "--limit", "0",
         "--target", "silver", f"SELECT number, toString(number) AS s FROM numbers({rows})"],
        env={**os.environ, **env_for(state)},
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert stderr == ""


@slow
def test_default_limits_are_set_in_the_stores(state: Path) -> None:
    silver = invoke(
        state, "--target", "silver", "--format", "csv",
        "SELECT getSetting('max_execution_time') AS t, getSetting('max_memory_usage') AS m",
    )  # fmt: skip
    assert silver.stdout.splitlines()[1] == f"60.0,{2 * 1024**3}", silver.output
    gold = invoke(
        state, "--target", "gold", "--format", "csv",
        "SELECT current_setting('statement_timeout') AS t, current_setting('work_mem') AS m",
    )  # fmt: skip
    assert gold.stdout.splitlines()[1] == "1min,128MB", gold.output


@slow
@pytest.mark.parametrize(
    ("target", "statement"),
    [
        ("silver", "SELECT sum(cityHash64(number)) FROM numbers(100000000000)"),
        ("gold", "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"),
    ],
)
def test_a_slow_query_stops_at_the_time_limit(state: Path, target: str, statement: str) -> None:
    started = time.monotonic()
    result = invoke(state, "--target", target, statement, ONERING_SQL_TIMEOUT="1")
    line = one_line_error(result.exit_code, result.stdout, result.stderr, 1)
    assert "time limit (1 s)" in line and "ONERING_SQL_TIMEOUT" in line
    assert time.monotonic() - started < 30


@slow
def test_a_greedy_query_stops_at_the_memory_limit(state: Path) -> None:
    result = invoke(
        state, "--target", "silver", "SELECT length(groupArray(number)) FROM numbers(50000000)",
        ONERING_SQL_MAX_MEMORY="20M",
    )  # fmt: skip
    line = one_line_error(result.exit_code, result.stdout, result.stderr, 1)
    assert "memory limit (20M)" in line and "ONERING_SQL_MAX_MEMORY" in line


@pytest.mark.parametrize(
    ("timeout", "memory", "expected"),
    [(None, None, (60.0, 2 * 1024**3)), ("2.5", "512M", (2.5, 512 * 1024**2)),
     ("0", "0", (0.0, 0)), ("60", "1.5GiB", (60.0, 3 * 1024**3 // 2)), ("60", "1000", (60.0, 1000)),
     ("soon", "2G", "ONERING_SQL_TIMEOUT"), ("-1", "2G", "ONERING_SQL_TIMEOUT"),
     ("inf", "2G", "ONERING_SQL_TIMEOUT"), ("60", "lots", "ONERING_SQL_MAX_MEMORY"),
     ("60", "-2G", "ONERING_SQL_MAX_MEMORY")],
)  # fmt: skip
def test_limit_settings(timeout: str | None, memory: str | None, expected: Any) -> None:
    env = {"ONERING_SQL_TIMEOUT": timeout or "", "ONERING_SQL_MAX_MEMORY": memory or ""}
    env = {name: value for name, value in env.items() if value}
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=expected):
            Settings.from_env(env)
    else:
        settings = Settings.from_env(env)
        assert (settings.sql_timeout_s, settings.sql_max_memory) == expected


@slow
def test_a_reader_that_does_not_read_does_not_hold_the_chdb_store(state: Path) -> None:
    """`onering sql … | less`: the result waits in a spool, not in the store."""
    lock = state / "clickhouse.lock"
    process = subprocess.Popen(
        [sys.executable, "-m", "onering_assets.cli", "sql", "--format", "csv",
         "SELECT number, toString(number) AS s FROM numbers(2000000)",
         "--target", "silver"],
        env={**os.environ, **env_for(state)},
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 120
        while lock.read_text() != str(process.pid) or FileLocks(state).is_held("clickhouse"):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the query never took and released the store"
            time.sleep(0.2)
        # The output (about 30 MB) is far past the pipe's buffer: the process waits on it.
        time.sleep(1)
        assert process.poll() is None
        other = run(state, "--format", "csv", "SELECT count() AS n FROM silver.airlines",
                    ONERING_LOCK_TIMEOUT="5")  # fmt: skip
        assert other.returncode == 0, other.stderr
        assert process.poll() is None
    finally:
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert out.count(b"\n") == 2_000_001


@slow
@pytest.mark.parametrize("exists", [False, True])
@pytest.mark.parametrize("statement", ["SELECT * FROM silver.flights", f"SELECT * FROM {GOLD}"])
def test_an_unbuilt_state_folder_is_left_as_it_was(
    tmp_path: Path, exists: bool, statement: str
) -> None:
    folder = tmp_path / "fresh"
    if exists:
        folder.mkdir()

    def listing() -> list[str]:
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    before = listing()
    result = invoke(folder, statement)
    line = one_line_error(result.exit_code, result.stdout, result.stderr, 1)
    assert "Nothing has been materialized" in line and "make demo" in line
    assert "onering materialize" in line
    assert listing() == before
