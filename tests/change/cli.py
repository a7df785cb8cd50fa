"""`onering` run as a subprocess on a test's own state, as the end-to-end tests of plan,
apply and environments use it (a process of its own: chDB keeps one data folder each)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def onering(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rows(env: dict[str, str], statement: str, target: str = "silver") -> list[dict]:
    """`onering sql --format json`: the statement's rows as dicts."""
    return json.loads(ok(onering(env, "sql", "--target", target, "--format", "json", statement)))


def project(base: Path, source: Path) -> dict[str, str]:
    """The environment of a project of its own in ``base``: a copy of ``platform/`` (which
    the test may edit), its state folder, and the source folder ``source``."""
    from onering_assets.settings import PLATFORM_DIR

    shutil.copytree(PLATFORM_DIR, base / "platform")
    return {
        **os.environ,
        "ONERING_STATE_DIR": str(base / "state"),
        "ONERING_SOURCE_DIR": str(source),
        "ONERING_PLATFORM_DIR": str(base / "platform"),
        "DAGSTER_HOME": str(base / "state" / "dagster"),
        "COLUMNS": "400",
    }
