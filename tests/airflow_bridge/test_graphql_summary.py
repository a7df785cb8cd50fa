"""The dagster_graphql mode's verdict on a failed step, from the error chain Dagster reports.

A OneRing error a retry cannot fix (a ConfigError: e.g. a run for a dropped environment)
fails the task for good, as the in_process and subprocess modes decide; the summary shows
the asset's own message, not Dagster's wrapper.
"""

from __future__ import annotations

from airflow_bridge.formats import NOT_RETRYABLE
from airflow_bridge.graphql import summarize


def failure(class_name: str, message: str) -> dict:
    return {
        "__typename": "ExecutionStepFailureEvent",
        "stepKey": "silver__flights",
        "error": {
            "message": "dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred",
            "className": "DagsterExecutionStepExecutionError",
            "cause": {"message": message, "className": class_name, "cause": None},
        },
    }


def test_a_final_onering_error_is_not_retried_and_its_message_is_shown() -> None:
    gone = "Environment 'dev' (run tag onering/env) does not exist: create it"
    summary = summarize("r1", "FAILURE", [failure("ConfigError", gone)])
    assert summary["retryable"] is False
    assert summary["failures"] == [f"silver__flights: {gone}"]


def test_an_error_a_retry_may_fix_is_retried() -> None:
    summary = summarize("r2", "FAILURE", [failure("StoreBusyError", "held by another run")])
    assert summary["retryable"] is True
    assert summary["failures"] == ["silver__flights: held by another run"]


def test_the_bridge_knows_every_final_onering_error() -> None:
    """Every module is imported first: an error class exists once its module is loaded, and
    which ones a test process loaded depends on the tests that ran before."""
    import importlib
    import pkgutil

    import onering_assets
    from onering_assets.errors import not_retryable

    for module in pkgutil.walk_packages(onering_assets.__path__, "onering_assets."):
        if not module.name.endswith("__main__"):  # it would run the CLI
            importlib.import_module(module.name)
    assert not_retryable() == NOT_RETRYABLE
