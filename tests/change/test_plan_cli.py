"""`onering plan` as a command, on a state folder where nothing was built (no store opened).

Every declared table is planned as added; `--check` turns that into exit 1 (a CI gate) while
the plain command exits 0; `--json` is one document; an invalid `--env` is refused, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onering_assets.cli import app


@pytest.fixture
def empty_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ONERING_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_check_exits_1_while_anything_is_to_apply(empty_state: Path) -> None:
    plain = CliRunner().invoke(app, ["plan"])
    assert plain.exit_code == 0, plain.output
    assert "Plan: 11 tables of 11 declared" in plain.output
    gate = CliRunner().invoke(app, ["plan", "--check"])
    assert gate.exit_code == 1 and "+ gold/route_performance  added" in gate.output
    body = json.loads(CliRunner().invoke(app, ["plan", "--json"]).output)
    assert {t["status"] for t in body["tables"]} == {"added"} and len(body["tables"]) == 11
    rebuild = {t["key"]: t["rebuild"] for t in body["tables"]}
    assert rebuild["gold/route_performance"] == ["*"]  # the whole of an unpartitioned table
    assert rebuild["silver/flights"] == []  # monthly: no month has landed in Bronze yet
    assert not empty_state.exists()  # planning created no store


def test_an_invalid_environment_is_refused(empty_state: Path) -> None:
    result = CliRunner().invoke(app, ["plan", "--env", "Bad Name"])
    assert result.exit_code == 2 and "is not an environment name" in result.output
