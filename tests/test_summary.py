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
