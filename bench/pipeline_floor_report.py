"""Pipeline bench, the engine-floor part of the report: Dagster, raw and floor seconds and
their ratios per layer, and whether the floor produced the Dagster run's rows."""

from __future__ import annotations

from typing import Any

from bench.harness import fmt_rate, fmt_ratio, fmt_s
from bench.pipeline_scope import LAYERS

FLOOR_COLUMNS = (
    "scale",
    "layer",
    "dagster",
    "raw",
    "floor",
    "dagster / raw",
    "dagster / floor",
    "raw / floor",
    "floor rows/s",
)


def floor_table(results: list[dict[str, Any]]) -> Any:
    """Per scale and layer: seconds of the Dagster, raw and floor median runs and the ratios."""
    from rich.table import Table

    table = Table(
        title="Engine floor, measured in the same run (warm, median run of each worker; "
        "a layer is the sum of its steps, medallion the three layers)"
    )
    for name in FLOOR_COLUMNS:
        table.add_column(name, justify="left" if name in ("scale", "layer") else "right")
    for i, r in enumerate(results):
        speed = r["floor"]["throughput"]
        for part, v in r["versus_floor"].items():
            rate = fmt_rate(speed.get(f"{part}_rows_per_s")) if part in LAYERS else ""
            label = part
            if part == "whole run":
                rate = f"peak RSS {r['floor']['rss']['self_mb']:.0f} MB"
                label = (
                    f"whole run (dagster: + {v['dagster_other_assets']} other assets, "
                    f"{v['dagster_other_assets_s']:.1f} s)"
                )
            table.add_row(
                f"{r['scale']}x",
                label,
                fmt_s(v["dagster_s"]),
                fmt_s(v["raw_s"]),
                fmt_s(v["floor_s"]),
                fmt_ratio(v["dagster_over_raw"]),
                fmt_ratio(v["dagster_over_floor"]),
                fmt_ratio(v["raw_over_floor"]),
                rate,
                end_section=part == "whole run" and i < len(results) - 1,
            )
    return table


def floor_lines(results: list[dict[str, Any]]) -> list[str]:
    """Whether the floor produced the Dagster run's rows; a warning line per difference."""
    lines = []
    for r in results:
        differences = r["floor_differences"]
        if not differences:
            checked = len(r["floor"].get("fingerprint") or {})
            lines.append(
                f"  {r['scale']}x: the floor wrote the Dagster run's rows: same rows per asset, "
                f"same contents of {checked} Silver/rejects/Gold tables"
            )
        for difference in differences:
            lines.append(
                f"[red]WARNING[/red] {r['scale']}x: the floor's result differs from the Dagster "
                f"run's, {difference}"
            )
    return lines


TARGET_FLOOR_RATIO = 2.0  # issue 13: Dagster <= 2x the engine floor at 10x and 30x
TARGET_RAW_RATIO = 1.15  # issue 13: Dagster <= 1.15x raw at 10x
TARGET_FIXED_S = 3.0  # issue 13: at 1x, Dagster run - floor <= 3 s for the 13 assets
TARGET_RSS_MB = 3072.0  # issue 13: peak RSS <= 3 GB at 30x


def _cell(value: dict[str, Any] | None, unit: str = "x") -> str:
    if not value:
        return "-"
    return f"{value['median']:.2f}{unit} ({value['min']:.2f}-{value['max']:.2f}, n={value['n']})"


def paired_lines(results: list[dict[str, Any]], scope: str) -> list[str]:
    """The whole-run ratios, run by run (median, min-max), and PASS/FAIL for the targets."""
    from bench.harness import mark

    lines = [
        f"Whole runs, paired run by run (Dagster scope: {scope}; the targets hold only for "
        "the medallion scope, the same work as raw and the floor):"
    ]
    for r in results:
        p = r.get("paired") or {}
        if not p.get("n"):
            continue
        lines.append(
            f"  {r['scale']}x: dagster / floor {_cell(p['dagster_over_floor'])}, dagster / raw "
            f"{_cell(p['dagster_over_raw'])}, raw / floor {_cell(p['raw_over_floor'])}, "
            f"dagster - floor {_cell(p['dagster_minus_floor_s'], ' s')}"
        )
        trees = {k: r[k].get("tree_rss") or {} for k in ("dagster", "raw", "floor")}
        lines.append(
            f"  {r['scale']}x peak RSS, every process of the worker + its embedded Postgres "
            "(sum, an upper bound): "
            + ", ".join(
                f"{k} {t.get('all_mb', 0):.0f} MB (Postgres {t.get('postgres_mb', 0):.0f}, "
                f"largest process {t.get('largest_process_mb', 0):.0f})"
                for k, t in trees.items()
            )
        )
        if r["scale"] >= 30:
            peak = trees["dagster"].get("all_mb", 0.0)
            lines.append(
                f"  {mark(0 < peak <= TARGET_RSS_MB)} {r['scale']}x Dagster worker peak RSS "
                f"{peak:.0f} MB <= {TARGET_RSS_MB:.0f} MB"
            )
        if scope != "medallion":
            continue
        checks = []
        if r["scale"] == 1:
            checks.append(("dagster - floor (fixed cost)", p["dagster_minus_floor_s"],
                           TARGET_FIXED_S, " s"))  # fmt: skip
        if r["scale"] >= 10:
            checks.append(("dagster / floor", p["dagster_over_floor"], TARGET_FLOOR_RATIO, "x"))
        if r["scale"] == 10:
            checks.append(("dagster / raw", p["dagster_over_raw"], TARGET_RAW_RATIO, "x"))
        for label, value, target, unit in checks:
            ok = value is not None and value["median"] <= target
            lines.append(
                f"  {mark(ok)} {r['scale']}x {label} {_cell(value, unit)} <= {target:g}{unit}"
                + ("" if value and value["n"] >= 5 else " (the target needs 5 runs: --repeat 5)")
            )
    return lines
