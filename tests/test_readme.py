"""README's Guarantees section points only at tests that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)(?:\[[^\]]*\])?`")


def guarantees() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Guarantees")
    return text[start : text.index("\n## ", start + 1)]


def test_every_guarantee_names_an_existing_test() -> None:
    section = guarantees()
    missing, found = [], 0
    for line in section.splitlines():
        current = None
        for match in REFERENCE.finditer(line):
            current = match.group(1) or current
            assert current, f"a bare ::{match.group(2)} with no file before it: {line[:80]}"
            source = (ROOT / current).read_text() if (ROOT / current).exists() else ""
            if not re.search(rf"^(async )?def {match.group(2)}\(", source, re.MULTILINE):
                missing.append(f"{current}::{match.group(2)}")
            found += 1
    assert found >= 30
    assert missing == []


def test_every_guarantee_row_names_a_test() -> None:
    rows = [
        line for line in guarantees().splitlines() if line.startswith("| ") and "---" not in line
    ]
    untested = [row[:80] for row in rows[1:] if "tests/" not in row]
    assert untested == []


def test_a_warm_make_demo_does_no_set_up_work(tmp_path: Path) -> None:
    """After one sync, `make demo` runs the demo and nothing else (no uv sync, no bytecode)."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    # Run as a fresh make even when the suite itself runs under `make test`.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    make = ["make", "--no-print-directory"]
    subprocess.run([*make, "-s", "setup"], cwd=ROOT, env=env, check=True, capture_output=True)
    dry = subprocess.run(
        [*make, "-n", "demo"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert [line for line in dry if line.strip() not in {"", ":"}] == [".venv/bin/onering demo"]


def test_every_relative_link_in_readme_and_docs_exists() -> None:
    """README links the docs and the screenshots the browser tests write; none may dangle."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
