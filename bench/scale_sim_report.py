"""Scale simulation, the analysis and the table: per-unit costs, how they grow, the
extrapolations (each labelled as such) and the capacity model."""

from __future__ import annotations

from typing import Any

from bench.harness import fmt_s
from bench.scale_sim_model import model


def _ok(result: dict[str, Any] | None) -> bool:
    return bool(result) and "failed" not in (result or {})


def _named(results: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [r for name, r in results.items() if name.startswith(prefix) and _ok(r)]


def _size(result: dict[str, Any]) -> int:
    return result["assets"]


def fit_quadratic(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares ``t = b*n + c*n**2`` through ``(n, t)`` points; None with fewer than 2."""
    if len(points) < 2:
        return None
    s11 = sum(n * n for n, _ in points)
    s12 = sum(n**3 for n, _ in points)
    s22 = sum(n**4 for n, _ in points)
    r1 = sum(n * t for n, t in points)
    r2 = sum(n * n * t for n, t in points)
    det = s11 * s22 - s12 * s12
    if det == 0:
        return None
    return (r1 * s22 - r2 * s12) / det, (s11 * r2 - s12 * r1) / det


def analyze(results: dict[str, Any], target: int = 100_000) -> dict[str, Any]:
    renders = sorted(_named(results, "render_"), key=lambda r: (r["grouping"], r["assets"]))
    render = [
        {
            "assets": r["assets"],
            "dag_files": r["dag_files"],
            "render_s": r["render_s"],
            "write_s": r["write_s"],
            "us_per_asset": (r["render_s"] + r["write_s"]) / r["assets"] * 1e6,
            "rss_mb": r["rss"]["self_mb"],
        }
        for r in renders
    ]
    parses = sorted(
        (
            (int(n.rsplit("_", 1)[1]), r)
            for n, r in results.items()
            if n.startswith("parse_") and _ok(r)
        ),
        key=lambda x: (x[1]["dags"], x[0]),
    )
    parse = [
        {
            "assets": n,
            "dags": r["dags"],
            "tasks": r["tasks"],
            "parse_s": r["median_s"],
            "us_per_task": r["median_s"] / max(1, r["tasks"]) * 1e6,
            "child_rss_mb": r["rss"]["children_mb"],
        }
        for n, r in parses
        if r.get("median_s") is not None
    ]
    dagster = {n: r for n, r in results.items() if n.startswith("dagster_") and _ok(r)}
    checked = sorted((r for n, r in dagster.items() if "nochecks" not in n), key=_size)
    plain = sorted((r for n, r in dagster.items() if n.endswith("_nochecks")), key=_size)
    fit = fit_quadratic([(r["assets"], r["snapshot_s"]) for r in checked])
    largest = plain[-1] if plain else (checked[-1] if checked else None)
    out: dict[str, Any] = {"render": render, "parse": parse}
    out["dagster"] = [
        {k: r[k] for k in ("assets", "checks", "definitions_s", "asset_graph_s", "snapshot_s")}
        | {"rss_mb": r["rss"]["self_mb"], "checks_on": r in checked}
        for r in checked + plain
    ]
    extrapolated: dict[str, float] = {}
    if fit:
        out["snapshot_fit"] = {"b_s_per_asset": fit[0], "c_s_per_asset2": fit[1]}
        extrapolated["bridge snapshot (quadratic fit)"] = fit[0] * target + fit[1] * target**2
    if largest:
        per_asset = (largest["definitions_s"] + largest["asset_graph_s"]) / largest["assets"]
        extrapolated["Dagster definitions + asset graph (linear)"] = per_asset * target
    out["extrapolated"] = {"assets": target, "seconds": extrapolated}
    out["backfill"] = [
        {
            k: r[k]
            for k in (
                "copies",
                "policy",
                "assets",
                "partitions",
                "target_asset_partitions",
                "target_unpartitioned",
                "target_s",
                "first_tick_s",
                "first_tick_runs",
                "first_tick_asset_partitions",
                "serialized_bytes",
            )
        }
        | {"rss_mb": r["rss"]["self_mb"]}
        for r in sorted(_named(results, "backfill_"), key=lambda r: (r["copies"], r["policy"]))
    ]
    out["snapshot_daily"] = _named(results, "snapshot_daily_")
    airflow = results.get("airflow")
    storage = results.get("storage")
    out["model"] = model(storage if _ok(storage) else None, airflow if _ok(airflow) else None)
    return out


def _rows(payload: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    a, res = payload["analysis"], payload["results"]
    rows = []
    for r in a["render"]:
        rows.append(
            (
                f"bridge render + write, {r['assets']:,} assets ({r['dag_files']} DAG files)",
                fmt_s(r["render_s"] + r["write_s"]),
                f"{r['us_per_asset']:.0f} µs/asset",
                f"{r['rss_mb']:,.0f} MB",
                "",
            )
        )
    for r in a["parse"]:
        rows.append(
            (
                f"Airflow DagBag parse, {r['assets']:,} assets ({r['dags']} files)",
                fmt_s(r["parse_s"]),
                f"{r['us_per_task']:.0f} µs/task",
                f"{r['child_rss_mb']:,.0f} MB",
                "forked parser",
            )
        )
    for r in a["dagster"]:
        checks = f"{r['checks']:,} checks" if r["checks_on"] else "no checks"
        rows.append(
            (
                f"Dagster definitions + asset graph, {r['assets']:,} assets, {checks}",
                fmt_s(r["definitions_s"] + r["asset_graph_s"]),
                f"{(r['definitions_s'] + r['asset_graph_s']) / r['assets'] * 1e3:.2f} ms/asset",
                f"{r['rss_mb']:,.0f} MB",
                f"snapshot {fmt_s(r['snapshot_s'])}",
            )
        )
    target = a["extrapolated"]["assets"]
    for label, seconds in a["extrapolated"]["seconds"].items():
        rows.append((f"{label}, {target:,} assets", fmt_s(seconds), "", "", "EXTRAPOLATED"))
    for r in a["backfill"]:
        rows.append(
            (
                f"Dagster backfill plan, {r['assets']:,} assets x {r['partitions']:,} days, "
                f"{r['policy']}",
                fmt_s(r["target_s"] + r["first_tick_s"]),
                f"{r['target_asset_partitions']:,} asset-partitions",
                f"{r['rss_mb']:,.0f} MB",
                f"first tick: {r['first_tick_runs']:,} runs",
            )
        )
    for r in a["snapshot_daily"]:
        rows.append(
            (
                f"bridge snapshot, {r['assets']:,} assets x {r['days']:,} daily partitions",
                fmt_s(r["snapshot_s"]),
                "",
                f"{r['rss']['self_mb']:,.0f} MB",
                f"all keys {r['get_partition_keys_s'] * 1e3:.1f} ms, "
                f"ends {r['first_and_last_key_s'] * 1e3:.2f} ms",
            )
        )
    af = res.get("airflow", {})
    if "task_instances" in af:
        rows.append(
            (
                f"Airflow timetable: {af['airflow_runs']:,} daily runs of the Bronze DAG",
                fmt_s(af["airflow_timetable_s"]),
                f"{af['task_instances']:,} task instances",
                f"{af['rss']['self_mb']:,.0f} MB",
                f"partition_range {af['partition_range_per_task_s'] * 1e3:.1f} ms/task",
            )
        )
    st = res.get("storage", {})
    if "bronze_bytes_per_row" in st:
        rows.append(
            (
                "bytes per flight, 1x (Bronze Parquet / Silver MergeTree)",
                fmt_s(st["worker_s"]),
                f"{st['bronze_bytes_per_row']:.1f} / {st['silver_bytes_per_row']:.1f} B",
                f"{st['rss']['self_mb']:,.0f} MB",
                f"{st['rows']:,} rows",
            )
        )
    return rows


def print_report(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Scale simulations ({payload['when']}, {payload['machine']['cpus']} cores)"
    )
    for col in ("simulation", "time", "per unit / count", "peak RSS", "note"):
        table.add_column(col, justify="left" if col in ("simulation", "note") else "right")
    for row in _rows(payload):
        table.add_row(*row)
    console = Console(width=150)
    console.print(table)
    failed = [n for n, r in payload["results"].items() if not _ok(r)]
    for name in failed:
        reason = str(payload["results"][name].get("failed", "no result"))[-300:]
        console.print(f"[red]{name} FAILED[/red]: {reason}")
    console.print_json(data=payload["analysis"]["model"])
