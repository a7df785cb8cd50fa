"""Streaming throughput: OneRing's replay and stream asset against the bare Pulsar client.

    .venv/bin/python -m bench.streaming [--months 2013-01 2013-02] [--repeat 3]

On a fresh state folder with its own local pulsar-lite, for the given months of the packaged
flights (January alone: 27,004 flights):

- replay: ``onering stream replay``'s function (rows to keyed JSON messages) against the floor,
  the same payloads pre-encoded and sent with ``send_async`` by the bare client;
- land: the ``stream/flights_events`` asset in one Dagster run (receive, decode, de-duplicate,
  write Parquet, acknowledge) against the floor, the bare client receiving and acknowledging
  the same number of messages from a second topic, decoding nothing and writing nothing.

Each ratio is printed beside its floor, measured in the same run; median of ``--repeat``.
Writes ``bench/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import RESULTS_DIR, machine, state_folder, write_results

RESULT = RESULTS_DIR / "streaming.json"


def _floor_publish(
    url: str, topic: str, payloads: list[tuple[bytes, str, dict[str, str]]]
) -> float:
    from onering_assets.stream.replay import client

    pulsar_client = client(url)
    started = time.perf_counter()
    producer = pulsar_client.create_producer(
        topic, block_if_queue_full=True, batching_enabled=False
    )
    for data, key, properties in payloads:
        producer.send_async(data, None, partition_key=key, properties=properties)
    producer.flush()
    seconds = time.perf_counter() - started
    producer.close()
    pulsar_client.close()
    return seconds


def _floor_consume(url: str, topic: str, count: int) -> float:
    import pulsar

    from onering_assets.stream.replay import client

    pulsar_client = client(url)
    consumer = pulsar_client.subscribe(
        topic,
        "floor",
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        receiver_queue_size=1000,
    )
    started = time.perf_counter()
    for _ in range(count):
        consumer.acknowledge(consumer.receive(timeout_millis=30_000))
    seconds = time.perf_counter() - started
    consumer.close()
    pulsar_client.close()
    return seconds


def one_round(months: set[str], work: Path) -> dict[str, float]:
    import dagster as dg

    from onering_assets.definitions import build_definitions
    from onering_assets.resources import SourceResource
    from onering_assets.runner import execute
    from onering_assets.settings import Settings
    from onering_assets.stream import broker
    from onering_assets.stream.assets import KEY
    from onering_assets.stream.events import DEFAULT_TOPIC, encode, flight_key
    from onering_assets.stream.replay import months_of, replay

    settings = Settings(profile="local", state_dir=work / "state")
    url = broker.start(settings.state_dir / "pulsar").url
    try:
        landing = SourceResource(path=None).land("flights")
        row_months = months_of(landing.table)
        rows, lines = landing.table.to_pylist(), landing.lines.to_pylist()
        picked = [i for i, m in enumerate(row_months) if m in months]
        payloads = [
            (encode(rows[i]), flight_key(rows[i]), {"source": landing.label, "line": str(lines[i])})
            for i in picked
        ]
        floor_topic = "persistent://public/default/bench-floor"
        result: dict[str, float] = {"messages": float(len(picked))}
        result["floor_publish_s"] = _floor_publish(url, floor_topic, payloads)
        result["replay_s"] = replay(
            url, DEFAULT_TOPIC, landing.table, landing.lines, landing.label, months=months
        ).seconds
        result["floor_consume_s"] = _floor_consume(url, floor_topic, len(picked))
        defs = build_definitions(settings)
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            summary = execute(defs, instance, assets={KEY}, progress=False)
            result["land_s"] = time.perf_counter() - started
            assert summary.success, summary.failures
        return result
    finally:
        broker.stop(settings.state_dir / "pulsar")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--months", nargs="+", default=["2013-01"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    began = time.perf_counter()
    rounds = []
    for i in range(args.repeat):
        with state_folder(f"onering-streaming-{i}-", keep=False) as work:
            rounds.append(one_round(set(args.months), work))

    def med(name: str) -> float:
        return statistics.median(r[name] for r in rounds)

    messages = int(rounds[0]["messages"])
    table = Table(
        title=f"Streaming, {messages:,} flights ({' '.join(args.months)}), median of {len(rounds)}"
    )
    for column in ("step", "OneRing", "floor (bare pulsar-client)", "OneRing / floor"):
        table.add_column(column)
    rows: dict[str, Any] = {}
    for step, ours, floor in (
        ("replay (publish)", "replay_s", "floor_publish_s"),
        ("land (consume, write, ack)", "land_s", "floor_consume_s"),
    ):
        a, b = med(ours), med(floor)
        rows[step] = {"seconds": a, "floor_seconds": b, "ratio": a / b}
        table.add_row(
            step,
            f"{a:.2f} s ({messages / a:,.0f}/s)",
            f"{b:.2f} s ({messages / b:,.0f}/s)",
            f"{a / b:.2f}×",
        )
    console = Console()
    console.print(table)
    payload = {
        "machine": machine(pulsar_client="pulsar-client", pulsar_lite="pulsar-lite"),
        "messages": messages,
        "rounds": rounds,
        "steps": rows,
        "bench_seconds": time.perf_counter() - began,
    }
    write_results(RESULT, payload, console)


if __name__ == "__main__":
    main()
