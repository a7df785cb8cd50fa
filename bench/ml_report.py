"""ML bench, the report: one table, floors beside what they bound, PASS/FAIL per target."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import mark

TARGET_P99_MS = 10.0
TARGET_RATIO = 1.5


def _ms(values: dict[str, float]) -> str:
    return f"{values['p50_ms']:.2f} / {values['p99_ms']:.2f} ms"


def _rate(value: float) -> str:
    return f"{value:,.0f} flights/s"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, measured, beside it) rows of the table."""
    f, t = results["features"], results["training"]
    local, http = results["in_process"], results["http"]
    bento, bare, defaults = http["bento"], http["bare"], http["bento_defaults"]
    materialize = ", ".join(
        f"{k.removeprefix('materialize_')} {v:.2f} s"
        for k, v in f["seconds"].items()
        if k.startswith("materialize_")
    )
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in t["step_seconds"].items())
    return [
        ("features: rows per view", ", ".join(f"{k} {v:,}" for k, v in f["rows"].items()), ""),
        (
            "features: compute / write / apply / materialize",
            " / ".join(
                f"{f['seconds'][k]:.2f} s" for k in ("compute", "write", "apply", "materialize")
            ),
            materialize,
        ),
        (
            "features: total (Feast import+open apart)",
            f"{f['total_s']:.2f} s",
            f"open {f['seconds']['feast_open']:.2f} s",
        ),
        (
            "training set (labelled flights + Feast PIT join)",
            f"{t['seconds']['labelled_flights'] + t['seconds']['historical_retrieval']:.2f} s",
            f"{t['rows']:,} flights",
        ),
        ("train + gate + register + promote", f"{t['seconds']['train_and_gate']:.2f} s", steps),
        (
            "  model",
            f"version {t['version']}, AUC {t['metrics']['test_auc']:.3f}",
            f"baseline {t['metrics']['baseline_auc']:.3f}, "
            f"ONNX diff {t['metrics']['onnx_max_abs_diff']:.1e}",
        ),
        ("floor: online lookup alone, p50 / p99", _ms(local["lookup"]), "in process, Feast SQLite"),
        ("floor: ONNX predict alone, p50 / p99", _ms(local["predict"]), "in process, onnxruntime"),
        ("predictor in process (validate+lookup+predict)", _ms(local["predictor"]), "no HTTP"),
        (
            "floor: bare Starlette/uvicorn, p50 / p99",
            _ms(bare),
            f"CPU {bare['cpu_ms_per_request']:.2f} ms/request",
        ),
        (
            "BentoML /predict, p50 / p99",
            _ms(bento),
            f"CPU {bento['cpu_ms_per_request']:.2f} ms/request",
        ),
        (
            "  same, BentoML's defaults (trace, log, metrics)",
            _ms(defaults),
            f"CPU {defaults['cpu_ms_per_request']:.2f} ms/request",
        ),
        (
            "BentoML / bare: p50, p99, CPU",
            f"{bento['p50_ms'] / bare['p50_ms']:.2f}x, {bento['p99_ms'] / bare['p99_ms']:.2f}x, "
            f"{bento['cpu_ms_per_request'] / bare['cpu_ms_per_request']:.2f}x",
            f"target <= {TARGET_RATIO:g}x",
        ),
        (
            "batch in process",
            _rate(local["batch_flights_per_s"]),
            f"{results['batch']} flights a call",
        ),
        (
            "batch: bare / BentoML",
            f"{_rate(bare['batch_flights_per_s'])} / {_rate(bento['batch_flights_per_s'])}",
            f"{bento['batch_s'] * 1e3:.0f} ms a BentoML call",
        ),
    ]


def verdicts(results: dict[str, Any]) -> list[tuple[str, bool]]:
    bento, bare = results["http"]["bento"], results["http"]["bare"]
    latency = bento["p50_ms"] / bare["p50_ms"]
    cpu = bento["cpu_ms_per_request"] / bare["cpu_ms_per_request"]
    return [
        (
            f"BentoML single p99 {bento['p99_ms']:.2f} ms <= {TARGET_P99_MS:g} ms",
            bento["p99_ms"] <= TARGET_P99_MS,
        ),
        (
            f"BentoML p50 {latency:.2f}x the bare endpoint <= {TARGET_RATIO:g}x",
            latency <= TARGET_RATIO,
        ),
        (
            f"BentoML CPU/request {cpu:.2f}x the bare endpoint <= {TARGET_RATIO:g}x",
            cpu <= TARGET_RATIO,
        ),
    ]


def print_report(results: dict[str, Any]) -> None:
    console = Console(width=max(Console().width, 120))
    table = Table(title=f"ML: features, training, serving ({results['requests']} single requests)")
    for column in ("what", "measured", "beside it"):
        table.add_column(column)
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    for text, ok in verdicts(results):
        console.print(f"{mark(ok)} {text}")
