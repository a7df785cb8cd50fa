"""A failed Silver build keeps its rejected rows as evidence for the checks they explain.

A check that failed on rows (the reject share, a key) names the query of the rows this run
rejected; ``data_diff`` failed on how many published rows the build moves, which its own
metadata shows, so it names no rejects query, and a build failing on it alone keeps none.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

from onering_assets.checks.names import DATA_DIFF
from onering_assets.checks.outcome import Outcome
from onering_assets.silver.assets import with_evidence

QUERY = "SELECT * FROM silver.flights_rejects_failed WHERE _run = 'r'"


class Build:
    """What with_evidence asks of a Silver build: keep the rejects, say how to read them."""

    def __init__(self) -> None:
        self.kept = 0

    def keep_failed_rejects(self) -> str:
        self.kept += 1
        return QUERY


def context() -> SimpleNamespace:
    return SimpleNamespace(log=logging.getLogger("test"))


def test_only_checks_about_rows_name_the_rejects_query() -> None:
    build = Build()
    rejects = Outcome("reject_share", False, "12 % rejected")
    moved = Outcome(DATA_DIFF, False, "40 % moved: more than the declared 5 %")
    fine = Outcome("key_unique", True, "unique")
    out = with_evidence(context(), build, [rejects, moved, fine])  # type: ignore[arg-type]
    assert build.kept == 1
    assert out[0].summary == f'12 % rejected; this run\'s rejected rows: onering sql "{QUERY}"'
    assert out[0].metadata["rejects_query"] == QUERY
    assert out[1:] == [moved, fine]


def test_a_build_failing_on_data_diff_alone_keeps_no_rejects() -> None:
    build = Build()
    moved = Outcome(DATA_DIFF, False, "40 % moved")
    assert with_evidence(context(), build, [moved]) == [moved]  # type: ignore[arg-type]
    assert build.kept == 0
