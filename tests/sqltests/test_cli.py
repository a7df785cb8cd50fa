"""`onering test`: exit codes and output, on test files planted for one table.

A planted wrong expectation fails with exit 1 and the differing rows printed; a test file
naming a table the SQL does not read, a column that does not exist, rows that name
different columns, or no tests, is refused with exit 2. (A module of its own: chDB keeps
one data folder per process, and the command opens its own scratch one.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from onering_assets.catalog import load_catalog
from onering_assets.cli import app
from onering_assets.errors import ConfigError
from onering_assets.sqltests import spec

CATALOG = load_catalog()


def _plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, text: str) -> None:
    path = tmp_path / f"{table}.test.yml"
    path.write_text(text)
    real = spec.test_path
    monkeypatch.setattr(spec, "test_path", lambda t: path if t.name == table else real(t))


def test_onering_test_exits_1_and_prints_the_rows_that_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant(
        tmp_path,
        monkeypatch,
        "airlines",
        "tests:\n  - name: planted\n    given:\n      bronze.airlines:\n"
        "        - {carrier: aa, name: American}\n"
        "    expect:\n      rows:\n        - {carrier: aa}\n",
    )
    result = CliRunner().invoke(app, ["test", "--select", 'key:"silver/airlines"'])
    assert result.exit_code == 1, result.output
    assert "FAIL silver/airlines: planted (chdb)" in result.output
    assert "- expected, not produced: {carrier: aa}" in result.output
    assert "+ produced, not expected: {carrier: AA}" in result.output
    assert "0 passed, 1 failed" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tests:\n  - name: x\n    given: {bronze.planes: []}\n    expect: {rows: []}\n",
            "airlines does not read bronze.planes",
        ),
        (
            "tests:\n  - name: x\n    given: {bronze.airlines: [{code: AA}]}\n"
            "    expect: {rows: []}\n",
            "no column code in bronze.airlines",
        ),
        (
            "tests:\n  - name: x\n    given: {}\n    expect: {rows: [{carrier: AA}, {name: A}]}\n",
            "row 2 and row 1 differ in carrier, name; every expected row names the same",
        ),
        (
            "tests:\n  - name: x\n    given: {}\n    expect: {rows: [{nope: 1}]}\n",
            "no column nope in the output",
        ),
        ("tests: []\n", "expected `tests:`"),
        (
            "tests:\n  - name: x\n    descripton: typo\n    given: {}\n    expect: {rows: []}\n",
            "unknown key\\(s\\) descripton",
        ),
        ("tests:\n  - name: x\n    given: {}\n    expected: {rows: []}\n", "unknown key"),
    ],
)
def test_an_invalid_test_file_is_refused_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    _plant(tmp_path, monkeypatch, "airlines", text)
    with pytest.raises(ConfigError, match=message):
        spec.load_tests(CATALOG, CATALOG.sql_table("silver", "airlines"))
    result = CliRunner().invoke(app, ["test", "--select", 'key:"silver/airlines"'])
    assert result.exit_code == 2, result.output


def test_a_test_the_engine_cannot_run_is_an_error_line_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant(
        tmp_path,
        monkeypatch,
        "route_performance",
        "tests:\n  - name: a flight number that is not a number\n    given:\n"
        "      silver.flights:\n        - {flight: ten, origin: JFK, dest: LAX}\n"
        "    expect:\n      rows: []\n",
    )
    result = CliRunner().invoke(
        app,
        [
            "test",
            "--no-postgres",
            "--select",
            'key:"gold/route_performance" or key:"silver/airlines"',
        ],
    )
    assert result.exit_code == 1, result.output
    assert "ERROR gold/route_performance: a flight number that is not a number" in result.output
    assert "while reading the value of key flight" in result.output  # the engine's, one line
    assert "Traceback" not in result.output
    assert "3 passed, 1 failed" in result.output  # silver/airlines' three still ran
