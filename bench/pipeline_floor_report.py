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
