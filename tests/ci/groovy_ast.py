"""Debian's groovy parsing Jenkinsfiles and job-dsl scripts (never running them).

``jenkinsfile_ast.groovy`` compiles each file only to Groovy's CONVERSION phase (source to
AST) and prints what it found as JSON; all files go through one JVM start (about 2 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
AST_SCRIPT = Path(__file__).with_name("jenkinsfile_ast.groovy")
ENSURE_GROOVY = REPO / "ops" / "scripts" / "ensure-groovy.sh"


@dataclass(frozen=True)
class Parse:
    """One groovy run: its exit status and, per file path given, what the AST walk found."""

    returncode: int
    files: dict[str, dict[str, Any]]
    stderr: str


def java_env() -> dict[str, str]:
    """The environment with a JAVA_HOME that exists: Debian's groovy launcher defaults it to
    /usr/lib/jvm/default-java, which only the default-jre package creates."""
    env = dict(os.environ)
    home = env.get("JAVA_HOME", "")
    java = shutil.which("java")
    if not (home and Path(home, "bin", "java").exists()) and java is not None:
        env["JAVA_HOME"] = str(Path(java).resolve().parents[1])
    return env


def groovy_or_skip() -> str:
    """The groovy launcher, installed from Debian (apt-get) when missing; else the test skips."""
    if shutil.which("groovy") is None and ENSURE_GROOVY.exists():
        subprocess.run(["bash", str(ENSURE_GROOVY)], check=False, timeout=600)
    path = shutil.which("groovy")
    if path is None:
        pytest.skip("Debian's groovy is not installed (apt-get install groovy, as root)")
    proc = subprocess.run(
        [path, "--version"], env=java_env(), capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        pytest.skip(f"Debian's groovy does not start: {(proc.stderr or proc.stdout).strip()}")
    return path


def parse(groovy: str, paths: list[Path]) -> Parse:
    """Run the AST walk over ``paths`` in one groovy process."""
    proc = subprocess.run(
        [groovy, str(AST_SCRIPT), *map(str, paths)],
        env=java_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip(), f"groovy printed nothing (exit {proc.returncode}): {proc.stderr}"
    files = {entry["path"]: entry for entry in json.loads(proc.stdout)["files"]}
    return Parse(proc.returncode, files, proc.stderr)
