"""Every bad-input file lands with nothing lost, and Gold never changes on a refused batch.

Each case under tests/data/corpus/ runs through the real pipeline (Bronze -> Silver -> Gold
on chDB and the embedded Postgres) on one shared state folder, and must match the
``<case>.expected.yml`` beside it: rows landed, quarantined, rejected by reason, in Silver,
and the outcome. The table of every case is printed at the end of the session.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from onering_assets.settings import Settings
from tests.conftest import CORPUS_ROW
from tests.corpus.conftest import (
    Case,
    Observed,
    gold_snapshot,
    load_cases,
    longest_reject,
    observe,
    quarantined_lines,
    run_case,
    silver_with,
)

pytestmark = pytest.mark.slow

# Bronze lands these files only once it quarantines the lines the reader sets aside
# (SourceResource.land().malformed). Until then SourceResource.read() refuses the file.
CASES = [pytest.param(c, id=c.name) for c in load_cases()]


def record(request: pytest.FixtureRequest, case: Case, seen: Observed) -> None:
    """The case's row of the table, on its test report (so it reaches the xdist controller)."""
    row = {
        "file": case.name,
        "landed": seen.landed,
        "bronze": seen.bronze,
        "quarantined": ", ".join(f"{k} {v}" for k, v in seen.quarantined.items() if v) or "0",
        "rejected": ", ".join(f"{k} {v}" for k, v in sorted(seen.rejected.items())) or "0",
        "silver": seen.silver,
        "outcome": seen.outcome,
    }
    request.node.user_properties.append((CORPUS_ROW, row))


def assert_nothing_lost(seen: Observed) -> None:
    """Each landed line is in Bronze or quarantine; each Bronze row in Silver or rejects."""
    assert seen.landed == seen.bronze + sum(seen.quarantined.values())
    if seen.outcome == "published":
        assert seen.bronze == seen.silver + sum(seen.rejected.values())
    else:  # nothing of a refused or blocked batch reaches Silver
        assert seen.silver == 0 and not seen.rejected


def assert_expected(case: Case, seen: Observed) -> None:
    want = case.expected
    assert seen.outcome == want["outcome"], seen.summary.failures
    assert seen.landed == want["landed"]
    assert {k: v for k, v in seen.quarantined.items() if v} == want["quarantined"]
    assert seen.rejected == want["rejected"]
    assert seen.silver == want["silver"]
    assert set(want.get("failed_checks", [])) == set(seen.failed_checks)
    told = "\n".join(seen.summary.failures)
    blocking = seen.failed_checks if not seen.summary.success else []
    for check in blocking:  # the run's error names every check that stopped it
        assert check.split(":")[1] in told, told


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(
    case: Case,
    corpus_state: Settings,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    before = gold_snapshot(corpus_state)
    summary = run_case(corpus_state, case, instance, tmp_path / "source")
    seen = observe(corpus_state, case, summary)
    record(request, case, seen)
    assert_nothing_lost(seen)
    if seen.outcome != "published":
        assert gold_snapshot(corpus_state) == before, "Gold changed on a refused batch"
    assert_expected(case, seen)
    if seen.quarantined.get("malformed"):  # the exact bytes of each set-aside line are kept
        physical = case.data().splitlines()
        kept = quarantined_lines(corpus_state, case, summary.run_id)
        assert kept and all(physical[n - 1] == raw for n, raw in kept)
    if "silver_with" in case.expected:  # e.g. which copy of a duplicate key won
        want = case.expected["silver_with"]
        got = silver_with(corpus_state, case, summary.run_id, want["column"], want["value"])
        assert got == want["rows"]
    if "longest_reject_raw" in case.expected:  # a rejected row's raw text is kept whole
        assert (
            longest_reject(corpus_state, case, summary.run_id)
            >= case.expected["longest_reject_raw"]
        )


def test_corpus_covers_every_defect() -> None:
    """The corpus holds each kind of bad input issue 7 names, plus a clean control."""
    names = {c.name for c in load_cases()}
    for defect in (
        "clean", "unbalanced_quotes", "wrong_field_count", "wrong_types", "extra_column",
        "missing_column", "renamed_column", "duplicate_keys", "null_keys", "out_of_range",
        "non_utf8", "bom", "crlf", "empty", "header_only", "huge_field",
    ):  # fmt: skip
        assert any(n.endswith(defect) for n in names), defect
