"""A OneRing state folder with every asset materialized once, and the openmetadata env's Python.

Shared by the catalog tests (import the helpers; the fixtures live in the test modules).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from onering_assets.settings import PROJECT_ROOT

OM_ENV = PROJECT_ROOT / "envs" / "openmetadata"
OM_PYTHON = OM_ENV / ".venv" / "bin" / "python"
OM_WORKFLOW = PROJECT_ROOT / "platform" / "catalog" / "openmetadata" / "dagster-ingestion.yaml"
# One month is enough: the dimensions are built whole, the monthly assets for that month.
MONTH = "2013-01"
# The layers the connector can name (tables) or must not (Bronze containers). Features and
# ML assets are left out: the model's gate needs test months a one-month state lacks.
LAYERS = ("bronze", "silver", "gold")


def om_python() -> Path:
    """The openmetadata environment's interpreter; the test is skipped when it is missing."""
    if not OM_PYTHON.exists():
        pytest.skip(f"the openmetadata environment is missing ({OM_PYTHON}): run `make setup`")
    return OM_PYTHON


def run_in_om_env(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> dict:
    """``python *args`` in the openmetadata environment; the JSON object it prints last."""
    proc = subprocess.run(
        [str(om_python()), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def materialize_one_month(state: Path, source: Path) -> str:
    """Every asset of :data:`LAYERS` for :data:`MONTH`, by the real `onering` CLI; the run id."""
    env = {
        **os.environ,
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(source),
        "ONERING_PROFILE": "local",
    }
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "onering_assets.cli",
            "materialize",
            "--json",
            "--partition",
            MONTH,
            "--select",
            " or ".join(f"group:{layer}" for layer in LAYERS),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)["run_id"]
