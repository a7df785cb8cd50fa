"""Airflow tasks bench, the report: medians over runs 2..N per configuration, where the
task's time goes, and the PASS/INFO lines."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from airflow_bridge.local import PRELOAD
from bench.airflow_tasks_measure import Outcome, Sample
from bench.airflow_tasks_setup import ASSET
from bench.harness import fmt_s, mark, median_or_none

if TYPE_CHECKING:
    from rich.table import Table

TARGET_OVERHEAD_S = 1.0


TIMES = tuple(k for k in Sample.__dataclass_fields__ if k.endswith("_s"))


def median(samples: list[Sample], name: str) -> float | None:
    return median_or_none(v for s in samples if (v := getattr(s, name)) is not None)


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
        first = fmt_s(s["first"]["overhead_s"]) if s["first"] else "-"
        table.add_row(
            outcome.mode,
            ", ".join(outcome.preload) or "nothing",
            str(s["n"]),
            fmt_s(m["task_s"]),
            fmt_s(m["run_s"]),
            fmt_s(m["steps_s"]),
            f"[bold]{fmt_s(m['overhead_s'])}[/bold]",
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
        table.add_row(outcome.name, *(fmt_s(s["median"][key]) for _, key in columns))
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
        lines.append(f"{mark(False)} in_process overhead: {why}")
    else:
        ok = overhead["in_process"] <= TARGET_OVERHEAD_S
        lines.append(
            f"{mark(ok)} in_process overhead "
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
