"""What one materialization's metadata counts for: rows per month, rejects once per run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from onering_assets.observability.facts import rejected_of, rows_of

RANGED = {
    "rows": 51955,
    "rows_by_partition": {"2013-01": 27004, "2013-02": 24951},
    "rejects_by_reason": {"invalid dep_delay": 3, "duplicate key": 2},
}


@pytest.mark.parametrize(
    ("metadata", "partition", "rows", "rejected"),
    [
        (RANGED, "2013-01", 27004, 5),  # a ranged run: its first month carries the rejects
        (RANGED, "2013-02", 24951, 0),
        ({"rows": 16, "dagster/row_count": 16}, None, 16, 0),  # a whole table
        ({"rows": 7, "rejects_by_reason": {}}, None, 7, 0),
        ({"uri": "file://lake"}, None, None, 0),  # nothing recorded: not counted
        (
            {"rows": dg.MetadataValue.int(9), "rejects_by_reason": dg.MetadataValue.json({"x": 1})},
            None,
            9,
            1,
        ),
    ],
)
def test_rows_and_rejects_of_one_materialization(metadata, partition, rows, rejected) -> None:
    assert rows_of(metadata, partition) == rows
    assert rejected_of(metadata, partition) == rejected


def test_metrics_show_on_an_empty_state_folder(tmp_path: Path) -> None:
    env = os.environ | {"ONERING_STATE_DIR": str(tmp_path)}
    env.pop("DAGSTER_HOME", None)
    onering = Path(sys.executable).with_name("onering")
    result = subprocess.run(
        [str(onering), "metrics", "show"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "# TYPE onering_runs gauge" in result.stdout
    assert "onering_runs{" not in result.stdout  # no run yet, no sample
