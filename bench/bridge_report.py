"""Airflow bridge bench, the report: ours vs the floor per case, where the time goes, the
``in_process`` overhead, and one PASS/FAIL line per target."""

from __future__ import annotations

from typing import Any

from bench.harness import fmt_ratio, fmt_spread, mark

TARGET_250_S = 0.050
TARGET_RATIO = 1.5
TARGET_IN_PROCESS_S = 1.0


# --------------------------------------------------------------------------- analysis


def parsed(p: dict[str, Any]) -> bool:
    """A clean parse: timed, not killed, no import errors."""
    return p.get("median_s") is not None and not p.get("timed_out") and not p.get("errors")


def ratio(ours: dict[str, Any], floor: dict[str, Any]) -> float | None:
    if not parsed(ours) or not parsed(floor):
        return None
    return ours["median_s"] / floor["median_s"]


def analyze(results: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Ratios, per-task costs and the verdicts."""
    checks: list[tuple[bool, str]] = []
    for r in results:
        if r["size"] == "real":
            value = ratio(r["ours"], r["floor"])
            ok = value is not None and value <= TARGET_RATIO
            checks.append(
                (ok, f"real exported folder: ours/floor {fmt_ratio(value)} <= {TARGET_RATIO:g}x")
            )
            continue
        for grouping in ("one", "group"):
            g = r[grouping]
            g["ratio"] = ratio(g["ours"], g["floor"])
            label = f"{r['size']:,} assets, grouping={grouping}"
            ours = g["ours"]
            shown = fmt_parse(ours, timeout)
            if g["ratio"] is None:
                checks.append((False, f"{label}: ours {shown}"))
            else:
                checks.append(
                    (
                        g["ratio"] <= TARGET_RATIO,
                        f"{label}: ours/floor {g['ratio']:.2f}x <= {TARGET_RATIO:g}x",
                    )
                )
            if r["size"] == 250:
                ok = ours.get("median_s") is not None and ours["median_s"] <= TARGET_250_S
                checks.append((ok, f"{label}: parse {shown} <= {TARGET_250_S * 1000:.0f} ms"))
    return {"checks": checks}


# --------------------------------------------------------------------------- report


def fmt_parse(p: dict[str, Any], timeout: float) -> str:
    if p.get("failed") and p.get("median_s") is None:
        return "failed"
    if p.get("timed_out") and not p.get("n"):
        return f"> {timeout:.0f} s (killed)"
    median = p["median_s"]
    if p.get("errors"):
        timeouts = [e for e in p["errors"].values() if "DagBag import timeout" in e]
        why = "Airflow import timeout" if timeouts else "import error"
        return f"{why} at {median:,.1f} s"
    text = f"{median * 1000:,.0f} ms" if median < 10 else f"{median:,.1f} s"
    if p["n"] > 1:
        text += fmt_spread(p["min_s"], p["max_s"], p["n"], lambda v: f"{v * 1000:,.0f}")
    else:
        text += " (n=1)"
    return text + (" +timeout" if p.get("timed_out") else "")


def per_task(p: dict[str, Any]) -> str:
    if p.get("median_s") is None or not p.get("tasks"):
        return "-"
    return f"{p['median_s'] / p['tasks'] * 1e6:,.0f} µs"


def shape(p: dict[str, Any]) -> str:
    if p.get("dags") is None:
        return "-"
    errors = f", [red]{len(p['errors'])} errors[/red]" if p.get("errors") else ""
    return f"{p['dags']} / {p['tasks']:,} / {p['edges']:,}{errors}"


def parse_table(results: list[dict[str, Any]], timeout: float) -> Any:
    from rich.table import Table

    table = Table(title="Airflow parse: DagBag(dag_folder) median, a fresh forked process per run")
    for name in ("assets", "case", "DAGs / tasks / edges", "parse", "per task", "vs floor"):
        table.add_column(name, justify="left" if name in ("assets", "case") else "right")
    for i, r in enumerate(results):
        rows = real_rows(r) if r["size"] == "real" else synthetic_rows(r)
        for label, p, vs in rows:
            size = str(r["size"]) if r["size"] == "real" else f"{r['size']:,}"
            table.add_row(size, label, shape(p), fmt_parse(p, timeout), per_task(p), vs)
        if i < len(results) - 1:
            table.add_section()
    return table


def real_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    return [
        (
            f"ours (exported, grouping={r['grouping']})",
            r["ours"],
            fmt_ratio(ratio(r["ours"], r["floor"])),
        ),
        (f"floor EmptyOperator, grouping={r['grouping']}", r["floor"], "1.00x"),
        ("floor EmptyOperator, one DAG, no deps", r["floor_nodeps"], ""),
    ]


def synthetic_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    target = f" (<= {TARGET_RATIO:g}x)"
    rows = []
    for grouping in ("one", "group"):
        g = r[grouping]
        rows += [
            (f"ours, grouping={grouping}", g["ours"], fmt_ratio(g["ratio"]) + target),
            (f"floor EmptyOperator+set_upstream, {grouping}", g["floor"], "1.00x"),
        ]
    rows.append(("floor EmptyOperator, one DAG, no deps", r["floor_nodeps"], ""))
    for grouping in ("one", "group"):
        export = r[grouping]["export"]
        rows.append((f"export side: render + write, {grouping}", export, ""))
    return rows


def phases_table(results: list[dict[str, Any]]) -> Any:
    """Where the time goes, in process (no DagBag), per size and grouping."""
    from rich.table import Table

    cols = [
        (r, grouping)
        for r in results
        if r["size"] != "real"
        for grouping in ("one", "group")
        if "seconds" in r[grouping]["phases"]
    ]
    table = Table(title="Where the time goes: in process, first pass, no DagBag (ours vs floor)")
    table.add_column("phase")
    for r, grouping in cols:
        table.add_column(f"{r['size']:,} {grouping}", justify="right")
    names: list[str] = []
    for r, grouping in cols:
        names += [k for k in r[grouping]["phases"]["seconds"] if k not in names]
    for name in names:
        cells = []
        for r, grouping in cols:
            value = r[grouping]["phases"]["seconds"].get(name)
            cells.append("-" if value is None else fmt_seconds(value))
        table.add_row(name, *cells)
    extra = (
        ("DAG files (each reads only its own plan)", lambda p: str(p["dags"])),
        ("tasks / edges", lambda p: f"{p['tasks']:,} / {p['edges']:,}"),
        ("schedule Assets per DAG (max)", lambda p: str(p["schedule_assets"])),
        ("hash(dag) once (median DAG)", lambda p: f"{p['hash_dag_s'] * 1e6:,.0f} µs"),
    )
    for label, cell in extra:
        table.add_row(label, *(cell(r[grouping]["phases"]) for r, grouping in cols))
    return table


def fmt_seconds(value: float) -> str:
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"


def in_process_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="in_process mode: run_keys(['silver/airlines']) per task")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    warm, cold = result["warm"], result["cold"]
    if "failed" in warm:
        table.add_row("warm process", f"[red]{warm['failed']}[/red]")
        return table
    m = warm["median"]
    rows = [
        (f"warm: run_keys wall (median of {len(warm['calls'])})", m["wall_s"]),
        ("  of it build_definitions", m.get("build_definitions_s")),
        (
            "  of it runner.execute (job subset + execute_in_process)",
            m.get("execute (subset + run)_s"),
        ),
        ("    of it execute_in_process", m["run_s"]),
        ("    of it the Dagster steps' own work", m["steps_s"]),
        ("warm: overhead = wall - steps (target <= 1 s)", m["overhead_s"]),
        ("setup call (bronze+silver airlines, 1st in process)", warm["setup"]["wall_s"]),
    ]
    if "failed" not in cold:
        first = cold["first_call"]
        rows += [
            ("cold process: import onering_assets + dagster", cold["import_s"]),
            ("cold process: 1st run_keys wall", first["wall_s"]),
            ("  of it build_definitions", first.get("build_definitions_s")),
            ("  of it the Dagster steps' own work", first["steps_s"]),
            ("cold process: import + 1st call - steps", cold["import_s"] + first["overhead_s"]),
        ]
    for label, value in rows:
        table.add_row(label, "-" if value is None else f"{value:.3f}")
    table.add_row("Dagster events written per silver run", str(warm["calls"][0]["events"]))
    return table


def verdicts(analysis: dict[str, Any], in_process: dict[str, Any]) -> list[str]:
    lines = [f"{mark(ok)} {text}" for ok, text in analysis["checks"]]
    warm = in_process["warm"]
    if "failed" in warm:
        lines.append(f"{mark(False)} in_process overhead: {warm['failed']}")
    else:
        overhead = warm["median"]["overhead_s"]
        ok = overhead <= TARGET_IN_PROCESS_S and warm["success"]
        lines.append(
            f"{mark(ok)} in_process overhead {overhead:.3f} s per task (warm) "
            f"<= {TARGET_IN_PROCESS_S:g} s"
        )
    cold = in_process["cold"]
    if "failed" not in cold:
        total = cold["import_s"] + cold["first_call"]["overhead_s"]
        lines.append(
            f"INFO in_process overhead in a fresh process (what an Airflow 3 task process "
            f"pays): {total:.3f} s = import {cold['import_s']:.3f} s + 1st call - steps "
            f"{cold['first_call']['overhead_s']:.3f} s"
        )
    return lines


def print_report(payload: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(width=160)
    results, timeout = payload["results"], payload["timeout_s"]
    console.print(parse_table(results, timeout))
    if any(r["size"] != "real" for r in results):
        console.print(phases_table(results))
    console.print(in_process_table(payload["in_process"]))
    for line in verdicts(payload["analysis"], payload["in_process"]):
        console.print(line)
