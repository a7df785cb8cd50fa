"""The Dagster runs behind Airflow tasks, read from a state folder's instance."""

import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg


def runs_of(state: Path, task_id: str) -> list[dg.DagsterRun]:
    """The task's Dagster runs, first try first."""
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"airflow/task_id": task_id}))
    return sorted(runs, key=lambda r: int(r.tags["airflow/try_number"]))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def run_status(
    state: Path, task_id: str, try_number: int, *, webserver: bool = False
) -> str | None:
    """The status of the task's Dagster run for that try; None before it exists.

    Reads only once the storage is set up (by onering's runner, or by a webserver that
    is up): opening it while a task creates it would race in Dagster's migrations.
    """
    if not webserver and not (state / "dagster" / ".storage-ready").exists():
        return None
    for run in runs_of(state, task_id):
        if run.tags["airflow/try_number"] == str(try_number):
            return run.status.value
    return None


def checks_evaluated(state: Path, task_id: str, try_number: int, *, webserver: bool = False) -> int:
    """How many asset checks the task's run for that try has evaluated so far (``webserver``:
    the storage was set up by a webserver that is up, as in ``run_status``)."""
    if not webserver and not (state / "dagster" / ".storage-ready").exists():
        return 0
    run = next(
        (r for r in runs_of(state, task_id) if r.tags["airflow/try_number"] == str(try_number)),
        None,
    )
    if run is None:
        return 0
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        return len(
            instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        )


def failure_messages(state: Path, run_id: str) -> str:
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        records = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        events = [r.dagster_event for r in records if r.dagster_event is not None]
        return "\n".join(str(e.step_failure_data.error) for e in events)
