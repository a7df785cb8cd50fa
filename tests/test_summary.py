"""What a failed run says: OneRing's own sentence, even when it wraps another exception."""

import json

import dagster as dg

from onering_assets.errors import ConfigError
from onering_assets.summary import summarize


def test_a_wrapped_cause_reports_onering_s_sentence_and_class() -> None:
    """``ConfigError(…) from JSONDecodeError`` is reported as the ConfigError: its message
    names the file and the fix, and a retry cannot help (found by review: the JSON parser's
    message was printed and the run called retryable)."""

    @dg.asset
    def broken() -> None:
        try:
            json.loads("{ not json")
        except ValueError as err:
            raise ConfigError("suite.json: not a valid expectation suite; fix the file") from err

    with dg.instance_for_test() as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False)
    summary = summarize(result, 0.0)
    (failure,) = summary.failures
    assert failure == "broken: suite.json: not a valid expectation suite; fix the file"
    assert summary.to_dict()["retryable"] is False


def test_a_failed_warning_check_is_reported_as_a_warning_not_a_failure(capsys) -> None:
    from onering_assets.cli.report import print_summary
    from onering_assets.summary import RunSummary

    summary = RunSummary(success=True, seconds=1.0, run_id="r1")
    summary.checks = [
        ("ml/drift_report", "drifted_columns_share", False, "2013-07: 10 of 18 columns drifted"),
        ("gold/route_performance", "unique_key", True, "0 duplicates"),
    ]
    summary.warned = {("ml/drift_report", "drifted_columns_share")}
    print_summary(summary, "OneRing demo")
    text = capsys.readouterr().out
    assert "checks: 1 passed, 0 failed, 1 warned (non-blocking)" in text
    assert "warn ml/drift_report:drifted_columns_share — 2013-07: 10 of 18" in text
    assert "failed ml/drift_report" not in text
