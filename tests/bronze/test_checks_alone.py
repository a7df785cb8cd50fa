"""Bronze checks run alone see what the published batches set aside when they landed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from onering_assets.checks import names
from onering_assets.definitions import build_definitions
from onering_assets.runner import check_keys, execute
from tests.conftest import run, settings_for

FLIGHTS = dg.AssetKey(["bronze", "flights"])


def test_checks_alone_count_quarantined_lines_of_the_published_batch(
    tmp_path: Path, make_source, flights_jan_feb: pd.DataFrame, instance: dg.DagsterInstance
) -> None:
    rows = flights_jan_feb.head(40).copy()  # all of January 1st
    rows.loc[5, "month"] = "13"  # no valid month: quarantined as unassigned
    text = rows.to_csv(index=False)
    lines = text.splitlines()
    lines.insert(10, '2013,1,1,"unbalanced')  # a line the reader sets aside
    settings = settings_for(tmp_path, make_source(raw_flights="\n".join(lines) + "\n"))
    built = run(settings, instance=instance, select={FLIGHTS}, last="2013-01")
    assert built.success, built.failures

    defs = build_definitions(settings)
    alone = execute(
        defs, instance, assets=set(), checks=check_keys(defs, {FLIGHTS}), progress=False
    )

    results = {check: (passed, text) for _, check, passed, text in alone.checks}
    assert results[names.MALFORMED_LINES][0] is False
    assert results[names.MALFORMED_LINES][1].startswith("1 malformed line")
    assert results[names.UNASSIGNED_ROWS][0] is False
    assert results[names.UNASSIGNED_ROWS][1].startswith("1 rows")
    assert len(alone.checks) == len(check_keys(defs, {FLIGHTS}))
