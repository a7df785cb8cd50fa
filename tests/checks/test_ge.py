"""Great Expectations suites fail for real: a planted value against a real (or tightened) suite.

The suites run through the real GX 1.x API (``run_suite``). The end-to-end case, a planted
source value that fails a Gold suite and blocks that mart's publication, is in
``tests/gold/test_audit.py``.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from onering_assets.checks.ge import SUITES_DIR, run_suite
from onering_assets.checks.names import GE_SUITE
from onering_assets.errors import ConfigError

SUITE = "gold_airport_daily_weather"


def daily(wind_speed: float) -> pd.DataFrame:
    """Three rows shaped like gold.airport_daily_weather; EWR's wind speed is planted."""
    return pd.DataFrame(
        {
            "origin": ["EWR", "JFK", "LGA"],
            "day": [date(2013, 2, 12)] * 3,
            "flights": [331, 300, 290],
            "avg_dep_delay": [7.8, 5.1, 4.0],
            "avg_precip": [0.0, 0.0, 0.001],
            "avg_visib": [10.0, 9.5, 10.0],
            "avg_wind_speed": [wind_speed, 12.1, 11.4],
        }
    )


def tightened(tmp_path: Path, column: str, max_value: float) -> Path:
    """A copy of the suites folder whose Gold weather suite has a tighter upper bound."""
    folder = tmp_path / "expectations"
    shutil.copytree(SUITES_DIR, folder)
    path = folder / f"{SUITE}.json"
    spec = json.loads(path.read_text())
    for expectation in spec["expectations"]:
        if expectation["kwargs"].get("column") == column:
            expectation["kwargs"]["max_value"] = max_value
    path.write_text(json.dumps(spec))
    return folder


def test_the_real_suite_fails_on_an_impossible_value() -> None:
    outcome = run_suite(SUITE, daily(1048.36))
    assert not outcome.passed and outcome.name == GE_SUITE
    assert outcome.failing == 1
    assert re.search(r": 1 of \d+ expectations failed", outcome.summary)
    assert "column=avg_wind_speed" in outcome.summary and "(1 unexpected)" in outcome.summary


def shipped_bound(column: str) -> float:
    spec = json.loads((SUITES_DIR / f"{SUITE}.json").read_text())
    bounds = [
        e["kwargs"]["max_value"]
        for e in spec["expectations"]
        if e["kwargs"].get("column") == column
    ]
    return float(bounds[0])


def test_a_value_the_shipped_suite_passes_fails_a_tighter_copy(tmp_path: Path) -> None:
    planted = shipped_bound("avg_wind_speed") - 1
    assert run_suite(SUITE, daily(planted)).passed
    outcome = run_suite(SUITE, daily(planted), tightened(tmp_path, "avg_wind_speed", planted - 1))
    assert not outcome.passed and outcome.failing == 1
    assert f"max_value={planted - 1}" in outcome.summary and "(1 unexpected)" in outcome.summary


def test_a_suite_that_is_not_valid_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text(json.dumps({"expectations": [{"kwargs": {}}]}))
    with pytest.raises(ConfigError, match="not a valid expectation suite"):
        run_suite("broken", daily(10.0), tmp_path)


def test_a_missing_suite_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No expectation suite 'absent'"):
        run_suite("absent", daily(10.0), tmp_path)
