"""The tables of ``bench.airflow_month``: paired wall times, and where each side's time goes.

The Airflow side's critical path adds up to its wall time: for each DAG of the chain, what
queued its run (the trigger's request for Bronze; for Silver and Gold the asset events of
the upstream DAG's last asset task), queued -> running, running -> first task, the tasks
(first start -> last end), and after Gold's last asset task its run's end (the
``publish_lineage`` teardown and the scheduler noticing). The direct side: the Dagster run,
and the rest of the CLI process (imports, definitions, launch, exit).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.harness import fmt_s

TARGET_RATIO = 1.5
PARTS = (
    ("handoff_s", "queued by (trigger request / upstream asset events) ->"),
    ("queued_s", "run queued -> running"),
    ("to_first_task_s", "running -> first task starts"),
    ("tasks_s", "tasks, first start -> last end"),
)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measured(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in result["pairs"] if not p["warmup"]]


def critical_path(result: dict[str, Any]) -> list[tuple[str, float | None]]:
    """(part, median seconds over the measured pairs): the Airflow side's wall, in parts."""
    sides = [p["airflow"] for p in measured(result)]
    rows: list[tuple[str, float | None]] = []
    for i, dag in enumerate(sides[0]["dags"] if sides else []):
        name = dag["dag_id"].removeprefix("onering_")
        for key, label in PARTS:
            rows.append((f"{name}: {label}", median([s["dags"][i][key] for s in sides])))
        runs = median([s["dags"][i]["dagster_run_s"] for s in sides])
        rows.append((f"{name}:   of which inside Dagster runs (summed)", runs))
    rows.append(
        ("gold: last task end -> run end (teardown)",
         median([s["dags"][-1]["after_tasks_s"] for s in sides]))
    )  # fmt: skip
    rows.append(
        ("Airflow wall (median; per pair, the parts above but the 'of which' rows add to it)",
         median([s["wall_s"] for s in sides]))
    )  # fmt: skip
    directs = [p["direct"] for p in measured(result)]
    run = median([d["dagster_run_s"] for d in directs])
    wall = median([d["wall_s"] for d in directs])
    rows.append(("direct: the Dagster run", run))
    rows.append(
        ("direct: CLI process around it (imports, definitions, launch, exit)",
         None if wall is None or run is None else wall - run)
    )  # fmt: skip
    rows.append(("direct wall", wall))
    return rows


def label(result: dict[str, Any]) -> str:
    return f"tasks: {result['tasks']}, {result.get('settings', 'tuned')} settings"


def print_report(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="One month Bronze -> Silver -> Gold: Airflow vs onering materialize")
    columns = ("configuration", "direct", "Airflow", "Airflow / direct (min-max)", "target",
               "Dagster runs", "idle Airflow CPU", "warm-up pair")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for result in payload["results"]:
        if "failed" in result:
            table.add_row(label(result), f"[red]failed: {result['failed'][:200]}[/red]")
            continue
        pairs, warm = measured(result), result["pairs"][0]
        ratio = result["ratio"]
        verdict = "PASS" if ratio["median"] <= TARGET_RATIO else "FAIL"
        table.add_row(
            label(result),
            fmt_s(median([p["direct"]["wall_s"] for p in pairs])),
            fmt_s(median([p["airflow"]["wall_s"] for p in pairs])),
            f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f}, n={len(pairs)})",
            f"<= {TARGET_RATIO}x {verdict}",
            f"{pairs[0]['direct']['dagster_runs']} / {pairs[0]['airflow']['dagster_runs']}",
            f"{result['idle_cpu']:.2f} CPU-s/s",
            f"{fmt_s(warm['direct']['wall_s'])} / {fmt_s(warm['airflow']['wall_s'])}",
        )
    console.print(table)
    for result in payload["results"]:
        if "failed" in result:
            continue
        parts = Table(title=f"{label(result)}: where the time goes (medians of the pairs)")
        parts.add_column("part")
        parts.add_column("seconds")
        for part, seconds in critical_path(result):
            parts.add_row(part, fmt_s(seconds))
        console.print(parts)
