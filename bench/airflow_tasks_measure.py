"""Airflow tasks bench, the measuring: trigger DAG runs through the REST API, follow each
to its end, and time its task on both sides (Airflow's task instance and task log, the
Dagster run's and steps' stats)."""

from __future__ import annotations

import argparse
import contextlib
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from bench.airflow_tasks_setup import TASK_ID, BenchError, Setup, airflow, dagster_dev
from bench.harness import fmt_s

if TYPE_CHECKING:
    import dagster as dg
    from rich.console import Console

    from airflow_bridge.local import AirflowClient, LocalAirflow

RUN_TIMEOUT_S = 300.0


@dataclass
class Sample:
    """One DAG run: Airflow's view of the task and Dagster's view of the run it made."""

    airflow_run_id: str
    state: str
    dagster_run_id: str | None = None
    dagster_status: str | None = None
    queued_s: float | None = None  # TI queued -> TI start (scheduling; not in the task)
    task_s: float | None = None  # TI start -> TI end
    # The task, end to end: these six add up to task_s.
    airflow_pre_s: float | None = None  # TI start -> operator's execute() starts (task log)
    bridge_pre_s: float | None = None  # execute() starts -> Dagster run created (first event)
    launch_s: float | None = None  # run created -> RUN_START
    run_s: float | None = None  # RUN_START -> RUN_SUCCESS/FAILURE
    bridge_post_s: float | None = None  # run end -> execute() returns (task log)
    airflow_post_s: float | None = None  # execute() returns -> TI end
    steps_s: float | None = None  # union of the step intervals
    overhead_s: float | None = None  # task_s - steps_s
    steps: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Outcome:
    """Every run of one configuration, and why it stopped if it failed."""

    name: str
    mode: str
    dag_id: str
    preload: list[str]
    samples: list[Sample] = field(default_factory=list)
    failed: str | None = None


def epoch(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def run_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of ``intervals`` (steps that overlap count once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def task_log(local: LocalAirflow, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The task's last attempt log: Airflow 3 writes one JSON object per line."""
    folder = local.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={TASK_ID}"
    logs = sorted(folder.glob("attempt=*.log"))
    if not logs:
        raise BenchError(f"no task log under {folder}")
    entries = []
    for line in logs[-1].read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def task_error(local: LocalAirflow, dag_id: str, run_id: str) -> str:
    """The last error the task's log records, with its exception."""
    try:
        entries = task_log(local, dag_id, run_id)
    except BenchError as err:
        return str(err)
    errors = []
    for entry in entries:
        if entry.get("level") in ("error", "critical"):
            details = entry.get("error_detail") or [{}]
            exc = details[-1]
            extra = f" {exc['exc_type']}: {exc.get('exc_value')}" if "exc_type" in exc else ""
            errors.append(f"{entry.get('event')}{extra}")
    return errors[-1] if errors else "no error in the task log"


def execute_span(entries: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """When the operator's ``execute`` started (its first log line) and returned."""
    started = returned = None
    for entry in entries:
        event = str(entry.get("event", ""))
        if started is None and event.startswith("materializing "):
            started = epoch(entry.get("timestamp"))
        elif event == "::group::Post Execute":
            returned = epoch(entry.get("timestamp"))
    return started, returned


def xcom_run_id(client: AirflowClient, dag_id: str, run_id: str) -> str:
    entry = client.get(
        f"{run_path(dag_id, run_id)}/taskInstances/{TASK_ID}/xcomEntries/return_value"
    )
    value = entry["value"]
    return (json.loads(value) if isinstance(value, str) else value)["run_id"]


@dataclass(frozen=True)
class Marks:
    """Wall-clock instants (epoch seconds) of one task, from Airflow and its log."""

    start: float
    end: float
    execute: float | None
    returned: float | None


def add_dagster_times(sample: Sample, instance: dg.DagsterInstance, marks: Marks) -> None:
    """Fill the Dagster side of ``sample`` from the instance's run and step stats."""
    run_id = sample.dagster_run_id or ""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise BenchError(f"Dagster run {run_id} is not in the instance")
    sample.dagster_status = run.status.value
    stats = instance.get_run_stats(run_id)
    steps = {
        s.step_key: (s.start_time, s.end_time)
        for s in instance.get_run_step_stats(run_id)
        if s.start_time is not None and s.end_time is not None
    }
    created = min(e.timestamp for e in instance.all_logs(run_id))
    sample.steps = {k: e - s for k, (s, e) in steps.items()}
    sample.steps_s = union_seconds(list(steps.values()))
    sample.overhead_s = marks.end - marks.start - sample.steps_s
    if marks.execute is not None:
        sample.airflow_pre_s = marks.execute - marks.start
        sample.bridge_pre_s = created - marks.execute
    if stats.start_time is None or stats.end_time is None:
        return
    sample.launch_s = stats.start_time - created
    sample.run_s = stats.end_time - stats.start_time
    if marks.returned is not None:
        sample.bridge_post_s = marks.returned - stats.end_time
        sample.airflow_post_s = marks.end - marks.returned


def run_once(
    client: AirflowClient, local: LocalAirflow, instance: dg.DagsterInstance, dag_id: str
) -> Sample:
    """Trigger one DAG run, follow it to its end and time its task on both sides."""
    run_id = client.trigger(dag_id, partition_key=None, conf={})["dag_run_id"]
    done = client.follow(dag_id, run_id, timeout_s=RUN_TIMEOUT_S, say=lambda _: None, poll_s=0.5)
    sample = Sample(airflow_run_id=run_id, state=done["state"])
    tis = client.get(f"{run_path(dag_id, run_id)}/taskInstances")["task_instances"]
    ti = next(t for t in tis if t["task_id"] == TASK_ID)
    queued, start, end = (epoch(ti[k]) for k in ("queued_when", "start_date", "end_date"))
    if start is not None and end is not None:
        sample.task_s = end - start
        sample.queued_s = start - queued if queued is not None else None
    if ti["state"] != "success" or start is None or end is None:
        sample.error = f"task {ti['state']}: {task_error(local, dag_id, run_id)}"
        return sample
    sample.dagster_run_id = xcom_run_id(client, dag_id, run_id)
    execute, returned = execute_span(task_log(local, dag_id, run_id))
    add_dagster_times(sample, instance, Marks(start, end, execute, returned))
    return sample


def measure(
    setups: tuple[Setup, ...],
    client: AirflowClient,
    local: LocalAirflow,
    instance: dg.DagsterInstance,
    runs: int,
    console: Console,
) -> list[Outcome]:
    """Every configuration of ``setups`` on one running Airflow; a failure stops its runs."""
    outcomes = []
    for setup in setups:
        outcome = Outcome(setup.name, setup.mode, setup.dag_id, list(setup.preload))
        for i in range(runs):
            try:
                sample = run_once(client, local, instance, setup.dag_id)
            except Exception as err:  # a bench records why a mode failed, then goes on
                outcome.failed = f"run {i + 1}: {type(err).__name__}: {err}"
                break
            outcome.samples.append(sample)
            console.log(f"{setup.name} run {i + 1}/{runs}: {describe(sample)}")
            if sample.error:
                outcome.failed = f"run {i + 1}: {sample.error}"
                break
        outcomes.append(outcome)
    return outcomes


def describe(sample: Sample) -> str:
    if sample.error:
        return f"[red]{escape(sample.error)}[/red]"
    return (
        f"task {fmt_s(sample.task_s)}, Dagster run {fmt_s(sample.run_s)}, steps "
        f"{fmt_s(sample.steps_s)}, overhead {fmt_s(sample.overhead_s)} ({sample.dagster_status})"
    )


def failed_all(setups: tuple[Setup, ...], why: str) -> list[Outcome]:
    return [Outcome(s.name, s.mode, s.dag_id, list(s.preload), failed=why) for s in setups]


def one_line(err: BaseException, limit: int = 2000) -> str:
    return f"{type(err).__name__}: {err}"[:limit]


def on_airflow(
    setups: tuple[Setup, ...],
    local: LocalAirflow,
    instance: dg.DagsterInstance,
    args: argparse.Namespace,
    console: Console,
    dagster_port: int,
) -> list[Outcome]:
    """Up one Airflow, measure ``setups`` on it (graphql inside a ``dagster dev``), down."""
    say: Callable[[str], None] = console.log
    try:
        with airflow(local, say) as client:
            plain = tuple(s for s in setups if s.mode != "dagster_graphql")
            graph = tuple(s for s in setups if s.mode == "dagster_graphql")
            outcomes = measure(plain, client, local, instance, args.runs, console)
            if graph:
                try:
                    with dagster_dev(args.state, dagster_port, say):
                        outcomes += measure(graph, client, local, instance, args.runs, console)
                except BenchError as err:
                    outcomes += failed_all(graph, one_line(err))
            return outcomes
    except Exception as err:  # Airflow did not start: every configuration on it failed
        return failed_all(setups, f"local Airflow: {one_line(err)}")
