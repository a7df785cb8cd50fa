"""Pipeline bench, from the three workers' runs to the numbers: rows/s per layer, the
overhead ratios, a per-step breakdown of where the Dagster-minus-raw gap goes, and each
layer against the engine floor (with whether the floor produced the same rows)."""

from __future__ import annotations

from typing import Any

from bench.harness import spread
from bench.pipeline_scope import LAYERS, median_run, warm_runs


def rate(rows: float, seconds: float) -> float | None:
    return rows / seconds if seconds > 0 else None


def layer_sums(steps: dict[str, float], rows: dict[str, int]) -> dict[str, dict[str, float]]:
    """Seconds and rows per layer (rows as reported by each asset's row count)."""
    out: dict[str, dict[str, float]] = {}
    for layer in LAYERS:
        keys = [k for k in steps if k.startswith(f"{layer}/")]
        out[layer] = {
            "seconds": sum(steps[k] for k in keys),
            "rows": float(sum(rows.get(k, 0) for k in keys)),
        }
    return out


def gold_input_rows(rows: dict[str, int]) -> float:
    """Silver rows the Gold marts read (each mart reads each of its upstream tables)."""
    from onering_assets.catalog import load_catalog

    return float(
        sum(
            rows.get(f"{layer}/{name}", 0)
            for table in load_catalog().gold
            for layer, name in table.upstream
        )
    )


def throughput(steps: dict[str, float], rows: dict[str, int]) -> dict[str, float | None]:
    layers = layer_sums(steps, rows)
    return {
        "bronze_rows_per_s": rate(layers["bronze"]["rows"], layers["bronze"]["seconds"]),
        "silver_rows_per_s": rate(layers["silver"]["rows"], layers["silver"]["seconds"]),
        "gold_rows_per_s": rate(layers["gold"]["rows"], layers["gold"]["seconds"]),
        "gold_input_rows_per_s": rate(gold_input_rows(rows), layers["gold"]["seconds"]),
        **{f"{layer}_seconds": layers[layer]["seconds"] for layer in LAYERS},
    }


def breakdown(dagster: dict[str, Any], raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Per asset: Dagster step time (and its event-log writes) vs raw time (checks, GX)."""
    event_log = dagster.get("event_store", {}).get("per_step_s", {})
    rows = []
    for key, seconds in dagster["steps"].items():
        part = raw["steps"].get(key, {})
        rows.append(
            {
                "asset": key,
                "dagster_s": seconds,
                "dagster_event_log_s": event_log.get(key, 0.0),
                "raw_s": part.get("seconds", 0.0),
                "raw_checks_s": part.get("checks", 0.0),
                "raw_gx_s": part.get("gx", 0.0),
                "overhead_s": seconds - part.get("seconds", 0.0),
            }
        )
    return rows


def dominant(
    dagster: dict[str, Any], raw: dict[str, Any], probes: dict[str, float]
) -> dict[str, Any]:
    """Split the Dagster-minus-raw(excl. GX) gap: GX, event-log writes, everything else."""
    gap = dagster["seconds"] - raw["seconds_excl_gx"]
    rows = breakdown(dagster, raw)
    in_step = sum(r["overhead_s"] for r in rows)
    outside = dagster["outside_steps_seconds"] - raw["setup_seconds"]
    store = dagster.get("event_store", {})
    before = store.get("before_first_step_s", 0.0)
    in_steps_log = store.get("in_steps_s", 0.0)
    parts = {
        "GX suites": raw["gx_seconds"],
        "event log, before 1st step": before,
        "rest outside steps": outside - before,
        "event log, inside steps": in_steps_log,
        "rest inside steps": in_step - in_steps_log,
    }
    top = sorted(rows, key=lambda r: -r["overhead_s"])[:3]
    return {
        "gap_s": gap,
        "parts": parts,
        "largest": max(parts, key=lambda k: parts[k]),
        "event_log_s": store.get("total_s", 0.0),
        "event_log_writes": store.get("writes", 0),
        "top_steps": [(r["asset"], round(r["overhead_s"], 3)) for r in top],
        "probes": probes,
    }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def versus_floor(
    dag_run: dict[str, Any], raw_run: dict[str, Any], floor_run: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Seconds of each worker's median run and the ratios Dagster / raw, Dagster / floor and
    raw / floor: per layer (the sum of its steps), for the three layers together
    (``medallion``, steps only) and for the whole run (Dagster's also holds its other
    assets, airbyte/stream/features/ml, and the time outside steps)."""
    dag = layer_sums(dag_run["steps"], dag_run["rows"])
    raw = layer_sums({k: v["seconds"] for k, v in raw_run["steps"].items()}, raw_run["rows"])
    floor = layer_sums({k: v["seconds"] for k, v in floor_run["steps"].items()}, floor_run["rows"])
    seconds = {
        layer: (dag[layer]["seconds"], raw[layer]["seconds"], floor[layer]["seconds"])
        for layer in LAYERS
    }
    d, r, f = (sum(x[layer]["seconds"] for layer in LAYERS) for x in (dag, raw, floor))
    seconds["medallion"] = (d, r, f)
    seconds["whole run"] = (dag_run["seconds"], raw_run["seconds"], floor_run["seconds"])
    others = {k: v for k, v in dag_run["steps"].items() if k.split("/")[0] not in LAYERS}
    out: dict[str, dict[str, Any]] = {
        part: {
            "dagster_s": d,
            "raw_s": r,
            "floor_s": f,
            "dagster_over_raw": _ratio(d, r),
            "dagster_over_floor": _ratio(d, f),
            "raw_over_floor": _ratio(r, f),
        }
        for part, (d, r, f) in seconds.items()
    }
    out["whole run"]["dagster_other_assets"] = len(others)
    out["whole run"]["dagster_other_assets_s"] = sum(others.values())
    return out


def paired(dag: dict[str, Any], raw: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """Whole-run ratios run by run: measured run i of each worker (the workers run one after
    the other in fresh processes, each run after its warm-up), then their median and range.

    With ``--scope medallion`` the Dagster run is the 13 Bronze, Silver and Gold assets,
    the same work as raw and the floor; ``dagster_minus_floor_s`` is Dagster's fixed cost.
    """
    d, r, f = ([run["seconds"] for run in warm_runs(x["runs"])] for x in (dag, raw, floor))
    n = min(len(d), len(r), len(f))
    return {
        "n": n,
        "dagster_over_floor": spread([d[i] / f[i] for i in range(n)]),
        "dagster_over_raw": spread([d[i] / r[i] for i in range(n)]),
        "raw_over_floor": spread([r[i] / f[i] for i in range(n)]),
        "dagster_minus_floor_s": spread([d[i] - f[i] for i in range(n)]),
    }


def floor_differences(
    dag: dict[str, Any], dag_run: dict[str, Any], floor: dict[str, Any], floor_run: dict[str, Any]
) -> list[str]:
    """Where the floor's result is not the Dagster run's: rows per asset, then the
    fingerprint (rows and row hash) of every Silver table, its rejects and every mart."""
    found = []
    keys = {k for k in (*dag_run["rows"], *floor_run["rows"]) if k.split("/")[0] in LAYERS}
    for key in sorted(keys):
        a, b = dag_run["rows"].get(key), floor_run["rows"].get(key)
        if a != b:
            found.append(f"{key}: {a} rows in the Dagster run, {b} in the floor")
    theirs, ours = dag.get("fingerprint") or {}, floor.get("fingerprint") or {}
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            found.append(
                f"{key}: contents differ (Dagster {theirs.get(key)}, floor {ours.get(key)})"
            )
    return found


def analyze(
    scale: int,
    imports: dict[str, Any],
    dag: dict[str, Any],
    raw: dict[str, Any],
    source: dict[str, Any] | None,
    floor: dict[str, Any],
) -> dict[str, Any]:
    dag_run, raw_run_ = median_run(dag["runs"]), median_run(raw["runs"])
    floor_run = median_run(floor["runs"])
    return {
        "scale": scale,
        "source": source,
        "flights_rows": dag_run["rows"].get("bronze/flights"),
        "definitions": imports,
        "dagster": {
            **dag,
            "cold_seconds": dag["runs"][0]["seconds"],
            "warm": dag_run,
            "throughput": throughput(dag_run["steps"], dag_run["rows"]),
        },
        "raw": {
            **raw,
            "cold_seconds": raw["runs"][0]["seconds"],
            "warm": raw_run_,
            "throughput": throughput(
                {k: v["seconds"] for k, v in raw_run_["steps"].items()}, raw_run_["rows"]
            ),
        },
        "ratio_vs_raw_excl_gx": dag_run["seconds"] / raw_run_["seconds_excl_gx"],
        "ratio_vs_raw_incl_gx": dag_run["seconds"] / raw_run_["seconds"],
        "ratio_steps_only_incl_gx": sum(dag_run["steps"].values())
        / sum(v["seconds"] for v in raw_run_["steps"].values()),
        "breakdown": breakdown(dag_run, raw_run_),
        "dominant": dominant(dag_run, raw_run_, dag.get("probes", {})),
        "rows_match": {k: v for k, v in dag_run["rows"].items() if raw_run_["rows"].get(k) != v},
        "floor": {
            **floor,
            "cold_seconds": floor["runs"][0]["seconds"],
            "warm": floor_run,
            "throughput": throughput(
                {k: v["seconds"] for k, v in floor_run["steps"].items()}, floor_run["rows"]
            ),
        },
        "versus_floor": versus_floor(dag_run, raw_run_, floor_run),
        "paired": paired(dag, raw, floor),
        "floor_differences": floor_differences(dag, dag_run, floor, floor_run),
    }
