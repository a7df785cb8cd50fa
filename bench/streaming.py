"""Streaming throughput: OneRing's replay and stream asset against the bare Pulsar client.

    .venv/bin/python -m bench.streaming [--months 2013-01 2013-02 --limit 50000]
                                        [--latency-month 2013-03] [--repeat 3]

On a fresh state folder with its own local pulsar-lite, for the given months of the packaged
flights (January alone: 27,004 flights):

- replay: ``onering stream replay``'s function (rows to keyed JSON messages) against the floor,
  the same payloads pre-encoded and sent with ``send_async`` by the bare client;
- land: the ``stream/flights_events`` asset (receive, decode, de-duplicate, write Parquet
  durably, acknowledge), timed twice: as the whole Dagster run, and as the asset's own work
  (its step's start to its materialization, from the run's event log); against the floor, the
  bare client receiving and then acknowledging the same number of messages from a second
  topic, decoding nothing and writing nothing;
- latency: ``LATENCY_EVENTS`` events of ``--latency-month`` replayed, the stream asset run,
  then Silver flights for that month, until a SELECT on Silver returns them; against the
  floor, the bare client publishing and receiving the same events.

Each ratio is printed beside its floor, measured in the same run; median of ``--repeat``.
Writes ``bench/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import RESULTS_DIR, machine, state_folder, write_results
from onering_assets.stream.consume import UNACKED_LIMIT

RESULT = RESULTS_DIR / "streaming.json"
LATENCY_EVENTS = 1_000


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


def _floor_consume(url: str, topic: str, count: int, *, interleaved: bool = False) -> float:
    """The bare client receiving ``count`` messages and acknowledging them, nothing else.

    By default as the asset does it: receive every message (its payload and properties
    read, as any consumer must), then acknowledge them all and close, which sends the last
    acknowledgements (the client groups them; the asset's time includes its close too);
    ``interleaved`` acknowledges each as it arrives instead (the loop the first version of
    this bench timed; slower here).
    """
    import pulsar

    from onering_assets.stream.consume import RECEIVER_QUEUE
    from onering_assets.stream.replay import client

    pulsar_client = client(url)
    consumer = pulsar_client.subscribe(
        topic,
        "floor",
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        receiver_queue_size=RECEIVER_QUEUE,  # (the asset's own: 1000 was slower)
    )
    started = time.perf_counter()
    if interleaved:
        for _ in range(count):
            consumer.acknowledge(consumer.receive(timeout_millis=30_000))
    else:
        received = []
        for _ in range(count):
            msg = consumer.receive(timeout_millis=30_000)
            received.append((msg, msg.data(), msg.properties()))
        for msg, _, _ in received:
            consumer.acknowledge(msg)
    consumer.close()  # (acknowledgements are grouped: closing sends the last ones)
    seconds = time.perf_counter() - started
    pulsar_client.close()
    return seconds


def _step_seconds(instance: Any, run_id: str) -> float:
    """The stream asset's own work in a run: its step's start to its materialization.

    (Connect, receive, decode, de-duplicate, write, dead-letter, acknowledge: the body of the
    asset, without the run's start-up and end.)
    """
    times: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value in ("STEP_START", "ASSET_MATERIALIZATION"):
            times.setdefault(event.event_type_value, entry.timestamp)
    return times["ASSET_MATERIALIZATION"] - times["STEP_START"]


def _payloads(landing: Any, months: set[str], limit: int | None = None) -> list[Any]:
    from onering_assets.stream.events import encode, flight_key
    from onering_assets.stream.replay import months_of

    row_months = months_of(landing.table)
    picked = [i for i, m in enumerate(row_months) if m in months][:limit]
    rows = landing.table.take(picked).to_pylist()
    lines = landing.lines.take(picked).to_pylist()
    return [
        (encode(row), flight_key(row), {"source": landing.label, "line": str(line)})
        for row, line in zip(rows, lines, strict=True)
    ]


def one_round(
    months: set[str], latency_month: str, work: Path, limit: int | None = None
) -> dict[str, float]:
    import dagster as dg

    from onering_assets.definitions import build_definitions
    from onering_assets.resources import ClickHouseResource, SourceResource
    from onering_assets.runner import execute
    from onering_assets.settings import Settings
    from onering_assets.stream import broker
    from onering_assets.stream.assets import KEY
    from onering_assets.stream.events import DEFAULT_TOPIC
    from onering_assets.stream.replay import replay

    settings = Settings(profile="local", state_dir=work / "state")
    url = broker.start(settings.state_dir / "pulsar").url
    try:
        landing = SourceResource(path=None).land("flights")
        payloads = _payloads(landing, months, limit)
        if len(payloads) > UNACKED_LIMIT:  # the asset's batch and the floor's loop stop there
            raise SystemExit(
                f"{len(payloads):,} flights in {' '.join(sorted(months))}: one batch takes at "
                f"most {UNACKED_LIMIT:,}; add --limit {UNACKED_LIMIT}"
            )
        floor_topic = "persistent://public/default/bench-floor"
        interleaved_topic = "persistent://public/default/bench-floor-interleaved"
        result: dict[str, float] = {"messages": float(len(payloads)), "load_1m": os.getloadavg()[0]}
        result["floor_publish_s"] = _floor_publish(url, floor_topic, payloads)
        _floor_publish(url, interleaved_topic, payloads)
        result["replay_s"] = replay(
            url,
            DEFAULT_TOPIC,
            landing.table,
            landing.lines,
            landing.label,
            months=months,
            limit=limit,
        ).seconds
        result["floor_consume_s"] = _floor_consume(url, floor_topic, len(payloads))
        result["floor_interleaved_s"] = _floor_consume(
            url, interleaved_topic, len(payloads), interleaved=True
        )
        defs = build_definitions(settings)
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            summary = execute(defs, instance, assets={KEY}, progress=False)
            result["land_s"] = time.perf_counter() - started
            assert summary.success, summary.failures
            result["land_asset_s"] = _step_seconds(instance, summary.run_id)

            # Publish to queryable in Silver, one batch of LATENCY_EVENTS of another month.
            batch = _payloads(landing, {latency_month}, LATENCY_EVENTS)
            latency_topic = "persistent://public/default/bench-latency-floor"
            floor_started = time.perf_counter()
            _floor_publish(url, latency_topic, batch)
            _floor_consume(url, latency_topic, len(batch))
            result["latency_floor_s"] = time.perf_counter() - floor_started
            started = time.perf_counter()
            replay(
                url,
                DEFAULT_TOPIC,
                landing.table,
                landing.lines,
                landing.label,
                months={latency_month},
                limit=LATENCY_EVENTS,
            )
            result["latency_publish_s"] = time.perf_counter() - started
            streamed = execute(defs, instance, assets={KEY}, progress=False)
            assert streamed.success, streamed.failures
            result["latency_stream_run_s"] = time.perf_counter() - started
            silver = dg.AssetKey(["silver", "flights"])
            built = execute(
                defs,
                instance,
                assets={silver},
                first=latency_month,
                last=latency_month,
                progress=False,
            )
            assert built.success, built.failures
            result["latency_silver_run_s"] = time.perf_counter() - started
            with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as ch:
                [(count,)] = ch.query(
                    "SELECT count() FROM silver.flights WHERE _source LIKE '% via %'"
                ).result_rows
            result["latency_s"] = time.perf_counter() - started
            assert count == len(batch), (count, len(batch))
            result["latency_events"] = float(count)
        result["load_1m_end"] = os.getloadavg()[0]
        return result
    finally:
        broker.stop(settings.state_dir / "pulsar")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--months", nargs="+", default=["2013-01"])
    parser.add_argument("--latency-month", default="2013-03")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--limit",
        type=int,
        help="the first N flights of those months (at most 50,000: one batch, see consume.py)",
    )
    args = parser.parse_args()
    if args.latency_month in args.months:
        parser.error("--latency-month must be a month --months does not stream")
    if args.limit is not None and not 0 < args.limit <= UNACKED_LIMIT:
        parser.error(f"--limit must be 1 to {UNACKED_LIMIT:,} (one batch of the asset)")
    began = time.perf_counter()
    measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rounds = []
    for i in range(args.repeat):
        with state_folder(f"onering-streaming-{i}-", keep=False) as work:
            rounds.append(one_round(set(args.months), args.latency_month, work, args.limit))

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
        ("land, whole Dagster run", "land_s", "floor_consume_s"),
        ("land, the asset's own work", "land_asset_s", "floor_consume_s"),
    ):
        a, b = med(ours), med(floor)
        rows[step] = {"seconds": a, "floor_seconds": b, "ratio": a / b, "rate": messages / a}
        table.add_row(
            step,
            f"{a:.2f} s ({messages / a:,.0f}/s)",
            f"{b:.2f} s ({messages / b:,.0f}/s)",
            f"{a / b:.2f}×",
        )
    events = int(rounds[0]["latency_events"])
    a, b = med("latency_s"), med("latency_floor_s")
    step = f"publish to queryable in Silver ({events:,} events, {args.latency_month})"
    rows[step] = {
        "seconds": a,
        "floor_seconds": b,
        "ratio": a / b,
        "publish_s": med("latency_publish_s"),
        "stream_run_done_s": med("latency_stream_run_s"),
        "silver_run_done_s": med("latency_silver_run_s"),
    }
    table.add_row(step, f"{a:.2f} s", f"{b:.2f} s (publish + receive)", f"{a / b:.2f}×")
    console = Console()
    console.print(table)
    console.print(
        f"bare receive-and-ack loop acknowledging each message as it arrives: "
        f"{med('floor_interleaved_s'):.2f} s; load average (1 min) "
        f"{min(r['load_1m'] for r in rounds):.2f}–{max(r['load_1m_end'] for r in rounds):.2f}"
    )
    payload = {
        "machine": machine(pulsar_client="pulsar-client", pulsar_lite="pulsar-lite"),
        "measured_at": measured_at,
        "messages": messages,
        "rounds": rounds,
        "steps": rows,
        "bench_seconds": time.perf_counter() - began,
    }
    write_results(RESULT, payload, console)


if __name__ == "__main__":
    main()
