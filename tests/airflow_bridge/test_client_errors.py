"""Why a task failed, read from its Airflow log as `onering airflow trigger --wait` prints it.

The events are shaped as Airflow 3.3's log endpoint returns them (recorded from a real
failed OneRing task: tests/airflow_bridge/test_env_export.py runs one end to end).
"""

from __future__ import annotations

from airflow_bridge.client import error_lines

SUMMARY = (
    "Dagster run r1 failed (FAILURE):\n- step silver__airlines: silver.airlines in ClickHouse"
    " is not what its YAML declares; …:\n  - silver.airlines: column `x` UInt8 is declared"
    " but missing (ALTER TABLE silver.airlines ADD COLUMN `x` UInt8 AFTER `name`)"
)
LOG = [
    {"level": "info", "event": "materializing ['silver/airlines'] (in_process)"},
    {"level": "error", "event": "dagster - ERROR - STEP_FAILURE", "logger": "task.stderr"},
    {"level": "error", "event": "    raise ChangelogError(", "logger": "task.stderr"},
    {
        "level": "error",
        "event": "Task failed with exception",
        "error_detail": [
            {"exc_type": "AirflowFailException", "exc_value": SUMMARY, "is_cause": False},
            {"exc_type": "ChecksFailedError", "exc_value": SUMMARY, "is_cause": True},
        ],
    },
]


def test_the_exception_the_task_failed_with_is_the_reason_every_line() -> None:
    assert error_lines(LOG) == [
        "AirflowFailException: Dagster run r1 failed (FAILURE):",
        "- step silver__airlines: silver.airlines in ClickHouse is not what its YAML declares; …:",
        "  - silver.airlines: column `x` UInt8 is declared but missing (ALTER TABLE"
        " silver.airlines ADD COLUMN `x` UInt8 AFTER `name`)",
    ]


def test_without_an_exception_the_last_error_lines_and_plain_lines_are_read() -> None:
    events = [{"level": "error", "event": f"e{i}"} for i in range(6)]
    assert error_lines([*events, {"level": "info", "event": "fine"}]) == ["e2", "e3", "e4", "e5"]
    assert error_lines(["[..] INFO ok", "[..] ERROR disk full"]) == ["[..] ERROR disk full"]
    assert error_lines([]) == []


def test_the_last_exception_is_the_reason_not_an_earlier_retried_one() -> None:
    earlier = {"level": "error", "event": "retrying", "error_detail": [
        {"exc_type": "StoreBusyError", "exc_value": "busy"}]}  # fmt: skip
    assert error_lines([earlier, *LOG])[0].startswith("AirflowFailException: Dagster run r1")
