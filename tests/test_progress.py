"""The progress lines a run prints as checks end: a blocking failure and a warning differ."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

from onering_assets.progress import LINE_CHARS, ProgressHandler


def _line(severity: dg.AssetCheckSeverity, description: str) -> str | None:
    evaluation = AssetCheckEvaluation(
        asset_key=dg.AssetKey(["ml", "drift_report"]),
        check_name="drifted_columns_share",
        passed=False,
        metadata={},
        severity=severity,
        description=description,
    )
    event = dg.DagsterEvent(
        event_type_value="ASSET_CHECK_EVALUATION",
        job_name="__ASSET_JOB",
        event_specific_data=evaluation,
    )
    return ProgressHandler()._line(event, "ml__drift_report")


def test_a_warning_is_not_called_a_failure_and_a_long_text_is_one_short_line() -> None:
    warned = _line(dg.AssetCheckSeverity.WARN, "x" * 3000)
    assert warned is not None
    assert warned.startswith("  check warned (non-blocking) ml/drift_report:drifted_columns_share")
    assert len(warned) < LINE_CHARS + 100 and warned.endswith("…")
    failed = _line(dg.AssetCheckSeverity.ERROR, "2 rows")
    assert failed == "  check failed ml/drift_report:drifted_columns_share: 2 rows"
