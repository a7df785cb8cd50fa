"""ML bench: feature materialization, training, and serving latency beside its floors.

    python -m bench.ml [--state DIR] [--requests 1000] [--batch 1000] [--rounds 5] [--keep]

On a scratch copy of ``--state`` (a state folder with Bronze and Silver for 2013, e.g. one
`onering materialize` built; without it, Bronze and Silver are built first), in order:

1. features: every view's SQL over Silver, its Parquet in the lake, Feast apply, and
   materialization into the SQLite online store (``onering_assets.features.steps``);
2. training: the training set (labelled flights + Feast's point-in-time retrieval), then
   ``promote.train_and_gate`` (Spark fit on January–September, ONNX conversion, the gate,
   MLflow logging and registration, promotion), what the ``ml/flight_late_arrival`` asset
   runs;
3. serving, ``--requests`` single requests (real flights of the test months, each a
   different flight) and ``--batch``-flight batches, against floors measured in the same
   run: the online-store lookup alone and the ONNX predict alone (in process, one flight
   each), the whole predictor in process, and a bare Starlette endpoint on uvicorn doing
   the same lookup + predict over HTTP (``bench.ml_floor``). The BentoML service (as
   configured, and with BentoML's defaults back on: tracing, access log, metrics) and the
   bare endpoint are measured in alternating rounds on one kept-alive connection each,
   with the server's CPU time per request beside the latency.

Targets: p99 <= 10 ms for one prediction including the lookup, on 127.0.0.1; BentoML
<= 1.5x the bare endpoint. Results: the table, and ``bench/results/ml.json``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import LOGS_DIR, RESULTS_DIR, machine, state_folder, timed, write_results
from bench.ml_report import print_report
from onering_assets.settings import Settings

FLOOR_PORT, BENTO_PORT, DEFAULTS_PORT = 3961, 3962, 3963
WARM_UP = 100
# BentoML's own defaults, which SERVICE_CONFIG turns off (onering_assets/ml/serving_app.py):
# the same service measured with them back on says what each costs.
BENTO_DEFAULTS = " ".join(
    f"services.flight_late_arrival.{option}"
    for option in (
        "logging.access.enabled=true",
        "metrics.enabled=true",
        "tracing.excluded_urls=[]",
    )
)


def prepare_state(source: Path | None, folder: Path, console: Any) -> Settings:
    """``source`` copied into ``folder`` (lock files left out), or Bronze + Silver built there."""
    state = folder / ".onering"
    settings = Settings(profile="local", state_dir=state)
    if source is not None:
        shutil.copytree(source, state, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
        return settings
    import dagster as dg

    from onering_assets import runner
    from onering_assets.definitions import build_definitions

    console.log("building Bronze and Silver for 2013 (no --state given)")
    keys = {
        dg.AssetKey([layer, t]) for layer in ("bronze", "silver") for t in ("flights", "weather")
    }
    defs = build_definitions(settings)
    summary = runner.execute(
        defs,
        runner.instance_for(settings),
        assets=keys,
        first="2013-01",
        last="2013-12",
        progress=False,
    )
    if not summary.success:
        sys.exit(f"building Silver failed: {summary.failures}")
    return settings


def bench_features(settings: Settings) -> dict[str, Any]:
    """Each step of the feature build, timed; rows per view."""
    from onering_assets.features import steps
    from onering_assets.features.retrieval import feature_store
    from onering_assets.features.views import load_views
    from onering_assets.resources import ClickHouseResource, LakeResource

    seconds: dict[str, float] = {}
    views = load_views()
    lake = LakeResource(url=settings.lake_dir.as_uri())
    with timed(seconds, "feast_open"):
        store = feature_store(settings)
    clickhouse = ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}")
    with clickhouse.session() as client, timed(seconds, "compute"):
        rows = {v.name: steps.compute(client, v) for v in views.views}
    with timed(seconds, "write"):
        for view in views.views:
            steps.write(lake, view, rows[view.name])
    with timed(seconds, "apply"):
        steps.apply(store, views, lake)
    for view in views.views:
        with timed(seconds, f"materialize_{view.name}"):
            steps.materialize(store, view, rows[view.name])
    seconds["materialize"] = sum(v for k, v in seconds.items() if k.startswith("materialize_"))
    return {
        "rows": {name: table.num_rows for name, table in rows.items()},
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "total_s": round(sum(seconds[k] for k in ("compute", "write", "apply", "materialize")), 3),
    }


def bench_training(settings: Settings) -> tuple[dict[str, Any], Any]:
    """The training set, then train-gate-register-promote; timings, metrics, the set."""
    from onering_assets.features.retrieval import feature_store, historical_features
    from onering_assets.ml import promote, training_set
    from onering_assets.ml.training import TrainSpec
    from onering_assets.resources import ClickHouseResource
    from onering_assets.resources.mlflow import mlflow_resource
    from onering_assets.resources.spark import SparkResource

    seconds: dict[str, float] = {}
    clickhouse = ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}")
    with clickhouse.session() as client, timed(seconds, "labelled_flights"):
        flights = training_set.labelled_flights(client)
    with timed(seconds, "historical_retrieval"):
        frame = historical_features(settings, flights, store=feature_store(settings))
    with timed(seconds, "spark_start"):
        spark = SparkResource().session()
    with timed(seconds, "train_and_gate"):
        result = promote.train_and_gate(frame, spark, mlflow_resource(settings), TrainSpec())
    meta = result.metadata
    return {
        "rows": len(frame),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "step_seconds": meta.get("step_seconds", {}),
        "version": result.version,
        "promoted": result.promoted,
        "gate": [(o.name, o.passed) for o in result.outcomes],
        "metrics": {k: meta.get(k) for k in ("test_auc", "baseline_auc", "onnx_max_abs_diff")},
    }, frame


def sample_flights(frame: Any, n: int) -> list[dict[str, str]]:
    """``n`` flights of the test months (October–December) as requests, spread over them."""
    from onering_assets.ml.inputs import TIMEZONE

    local = frame["sched_dep_at"].dt.tz_convert(TIMEZONE)
    test = frame[local.dt.month >= 10]
    picked = test.iloc[:: max(1, len(test) // n)].head(n)
    return [
        {
            "carrier": row.carrier,
            "origin": row.origin,
            "dest": row.dest,
            "sched_dep_at": row.sched_dep_at.tz_convert(TIMEZONE).strftime("%Y-%m-%dT%H:%M"),
        }
        for row in picked.itertuples()
    ]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3  # noqa: E731
    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": ordered[-1] * 1e3}


def timed_calls(fn: Any, args: list[Any]) -> list[float]:
    out = []
    for arg in args:
        started = time.perf_counter()
        fn(arg)
        out.append(time.perf_counter() - started)
    return out


def bench_in_process(settings: Settings, flights: list[dict[str, str]], batch: int) -> dict:
    """The floors in this process: lookup alone, predict alone, the whole predictor."""
    from onering_assets.ml.serving_app import open_predictor

    predictor = open_predictor(settings)
    requests = [predictor.parse(f) for f in flights]
    rows = [[{k: getattr(r, k) for k in predictor.join_keys}] for r in requests]
    feeds = [predictor.prepare([r])[0] for r in requests]
    for _ in range(2):  # warm every path before timing it
        timed_calls(lambda row: predictor.lookup(predictor.refs, row), rows[:WARM_UP])
        timed_calls(predictor.probabilities, feeds[:WARM_UP])
        timed_calls(predictor.predict_one, flights[:WARM_UP])
    lookup = timed_calls(lambda row: predictor.lookup(predictor.refs, row), rows)
    predict = timed_calls(predictor.probabilities, feeds)
    whole = timed_calls(predictor.predict_one, flights)
    chunk = (flights * (batch // len(flights) + 1))[:batch]
    predictor.predict_batch(chunk)
    batches = timed_calls(predictor.predict_batch, [chunk] * 5)
    return {
        "version": predictor.version,
        "lookup": percentiles(lookup),
        "predict": percentiles(predict),
        "predictor": percentiles(whole),
        "batch_flights_per_s": batch / statistics.median(batches),
    }


def bench_http(settings: Settings, flights: list[dict[str, str]], batch: int, rounds: int) -> dict:
    """The bare endpoint, BentoML as configured and with its defaults, in alternating rounds."""
    from bench.ml_http import Client, batch_body, floor_server, request_bodies
    from onering_assets.ml.serving_server import running, server_env

    env = server_env(settings)
    bodies = request_bodies(flights)
    chunk = batch_body((flights * (batch // len(flights) + 1))[:batch])
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    logs = {name: LOGS_DIR / f"ml_{name}.log" for name in ("bare", "bento", "bento_defaults")}
    for log in logs.values():
        log.write_text("")
    with (
        floor_server(FLOOR_PORT, env, logs["bare"]) as floor_pid,
        running(settings, BENTO_PORT, logs["bento"], env=env) as bento,
        running(
            settings,
            DEFAULTS_PORT,
            logs["bento_defaults"],
            env={**env, "BENTOML_CONFIG_OPTIONS": BENTO_DEFAULTS},
        ) as defaults,
    ):
        clients = {
            "bare": Client(FLOOR_PORT, floor_pid),
            "bento": Client(BENTO_PORT, bento.pid),
            "bento_defaults": Client(DEFAULTS_PORT, defaults.pid),
        }
        seconds: dict[str, list[float]] = {k: [] for k in clients}
        cpu = dict.fromkeys(clients, 0.0)
        batches: dict[str, list[float]] = {k: [] for k in clients}
        for client in clients.values():
            client.singles(bodies[:WARM_UP])
            client.batch(chunk)
        per_round = -(-len(bodies) // rounds)
        for r in range(rounds):
            part = bodies[r * per_round : (r + 1) * per_round]
            for name, client in clients.items():
                took, used = client.singles(part)
                seconds[name] += took
                cpu[name] += used
                batches[name].append(client.batch(chunk))
        for client in clients.values():
            client.close()
    return {
        name: {
            **percentiles(seconds[name]),
            "cpu_ms_per_request": cpu[name] / len(seconds[name]) * 1e3,
            "batch_s": statistics.median(batches[name]),
            "batch_flights_per_s": batch / statistics.median(batches[name]),
        }
        for name in clients
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OneRing ML benchmark")
    parser.add_argument("--state", type=Path, help="a state folder with Silver for 2013")
    parser.add_argument("--requests", type=int, default=1000, help="single requests per server")
    parser.add_argument("--batch", type=int, default=1000, help="flights per batch request")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per server")
    parser.add_argument("--keep", action="store_true", help="keep the scratch state folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "ml.json")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    with state_folder("onering-bench-ml-", args.keep, console.log) as folder:
        settings = prepare_state(args.state, folder, console)
        features = bench_features(settings)
        console.log(f"features built in {features['total_s']:.1f} s")
        training, frame = bench_training(settings)
        console.log(f"trained and gated in {training['seconds']['train_and_gate']:.1f} s")
        if not training["promoted"]:
            sys.exit(f"the trained model was not promoted: {training['gate']}")
        flights = sample_flights(frame, args.requests)
        in_process = bench_in_process(settings, flights, args.batch)
        console.log("in-process floors measured; starting the servers")
        http = bench_http(settings, flights, args.batch, max(1, args.rounds))
    results = {
        "features": features,
        "training": training,
        "in_process": in_process,
        "http": http,
        "requests": len(flights),
        "batch": args.batch,
    }
    print_report(results)
    payload = {
        "machine": machine(bentoml="bentoml", feast="feast", onnxruntime="onnxruntime"),
        "bench_seconds": time.perf_counter() - started,
        "results": results,
    }
    write_results(args.out, payload, console)


if __name__ == "__main__":
    main()
