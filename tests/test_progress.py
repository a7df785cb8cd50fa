"""The progress lines a run prints as checks end: a blocking failure and a warning differ."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

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


def test_every_step_line_reaches_stderr_and_none_goes_through_the_compute_log_capture(
    tmp_path: Path,
) -> None:
    """Dagster copies a step's captured output back with `tail -F`, killed as the step ends,
    so a line written through the capture can be lost (dagster#23336): the run's last "ok"
    line once was. Progress lines bypass the capture; the step's own output still goes to it.
    """
    from onering_assets.progress import progress_logger
    from onering_assets.runner import execute

    @dg.asset
    def first() -> int:
        print("first's own output")
        return 1

    @dg.asset
    def second(first: int) -> int:
        print("second's own output")
        return first + 1

    defs = dg.Definitions(assets=[first, second], loggers={"onering_progress": progress_logger})
    keys = [dg.AssetKey("first"), dg.AssetKey("second")]
    captured = tmp_path / "stderr.txt"
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        with captured.open("w") as out:
            saved = os.dup(2)
            os.dup2(out.fileno(), 2)
            try:
                with contextlib.redirect_stderr(out):
                    summary = execute(defs, instance, assets=keys, progress=True)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        assert summary.success
        text = captured.read_text()
        for step in ("first", "second"):
            assert f"  > {step} ..." in text
            assert re.search(rf"^  ok {step} \(\d+\.\d s\)$", text, re.M), text
        logs = [
            p.read_text() for p in (tmp_path / "home").rglob("*") if p.suffix in {".out", ".err"}
        ]
        assert any("second's own output" in log for log in logs)  # the capture still works
        assert not any("  ok " in log or "  > " in log for log in logs)
