"""``stream/flights_events``: a bounded batch of flight events from Pulsar into Bronze.

It writes into Bronze flights' own months (``month=…/stream-<batch>.parquet``, beside the
batch path's ``data.parquet``), so Silver flights reads both; it is its own asset (group
``stream``) because it runs on its own schedule and needs a broker. See consume.py for why a
kill at any moment loses and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg

from onering_assets.catalog import BronzeTable, load_catalog
from onering_assets.checks.outcome import Outcome
from onering_assets.checks.specs import CheckDecl
from onering_assets.factory import build_table_asset
from onering_assets.journal import fault
from onering_assets.partitions import MONTHLY
from onering_assets.resources import LakeResource
from onering_assets.stream import consume, files
from onering_assets.stream.events import Event, dead_letter_topic
from onering_assets.stream.replay import answered
from onering_assets.stream.replay import client as pulsar_client
from onering_assets.stream.resource import PulsarResource

KEY = dg.AssetKey(["stream", "flights_events"])
TABLE = "flights"
DEAD_LETTERS = "dead_letters"
DECLS = [
    CheckDecl(
        DEAD_LETTERS,
        False,
        "Messages that cannot be flights (undecodable, not the table's columns, no valid "
        "month) went to the dead-letter topic; the count and reasons are here.",
    ),
]


def flights_table() -> BronzeTable:
    return next(t for t in load_catalog().bronze if t.name == TABLE)


def dead_letter_outcome(poison: list[tuple[Any, str]], topic: str) -> Outcome:
    if not poison:
        return Outcome(DEAD_LETTERS, True, "every message was a flight")
    counts = consume.reasons(poison)
    return Outcome(
        DEAD_LETTERS,
        False,
        f"{len(poison)} message(s) sent to {dead_letter_topic(topic)}",
        failing=len(poison),
        sample=[{"reason": r, "messages": n} for r, n in counts.items()][:5],
        metadata={"dead_letter_topic": dead_letter_topic(topic), "reasons": counts},
    )


def last_batch_outcome(instance: dg.DagsterInstance) -> Outcome:
    """``dead_letters`` from the latest materialization's metadata (the DLQ is not re-read)."""
    event = instance.get_latest_materialization_event(KEY)
    if event is None or event.asset_materialization is None:  # nothing consumed, nothing lost
        return Outcome(DEAD_LETTERS, True, "no batch consumed yet (`onering stream replay` first)")
    metadata = event.asset_materialization.metadata
    value = metadata["dead_lettered"].value if "dead_lettered" in metadata else 0
    count = value if isinstance(value, int) else 0
    summary = f"the last batch (run {event.run_id[:8]}) sent {count} message(s) to the DLQ"
    return Outcome(DEAD_LETTERS, count == 0, summary, failing=count)


def stall_warning(got: consume.Received, pulsar: PulsarResource) -> str:
    """What an idle end short of the topic's last message means, without guessing which."""
    return (
        f"The batch waited {pulsar.idle_ms} ms after {len(got.messages):,} message(s) without "
        "reaching the one that was the topic's last when it began. Either that message was "
        "acknowledged already (an earlier batch's messages redelivered), or the broker held "
        "messages back: if it limits unacknowledged messages per consumer below max_messages "
        f"({pulsar.max_messages:,}; Pulsar's maxUnackedMessagesPerConsumer is "
        f"{consume.UNACKED_LIMIT:,} by default), lower max_messages to that limit. Messages "
        "not received stay unacknowledged for the next batch."
    )


def received_id(events: list[Event], batch: str, dropped: int) -> str:
    """The digest of the messages received: the batch's own id when none was dropped."""
    if not events:
        return ""
    return batch if not dropped else consume.batch_id(events)


def build_stream_asset() -> dg.AssetsDefinition:
    table = flights_table()
    required = tuple(c.name for c in table.columns)
    months = frozenset(MONTHLY.get_partition_keys())
    spec = dg.AssetSpec(
        key=KEY,
        description=(
            "Flight events consumed from Pulsar in bounded batches into Bronze flights' months "
            "(stream-<batch>.parquet beside the batch path's files); acknowledged once durable."
        ),
        group_name="stream",
        owners=list(table.owners),
        tags={"layer": "stream", "store": "lake"},  # rows into Bronze, its ledger in the lake
        kinds={"pulsar", "parquet"},
        # Its own lake folder holds one ledger entry per batch (the rows go to Bronze flights).
        metadata={"onering/writes": f"bronze.{TABLE}", "uri": "stream/flights_events/"},
    )

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator[Any]:
        if not materialize:  # checks alone: what the last consumed batch dead-lettered
            yield [last_batch_outcome(context.instance)]
            return
        lake: LakeResource = context.resources.lake
        pulsar: PulsarResource = context.resources.pulsar
        url, topic = pulsar.service_url(), pulsar.topic
        with consume.collector_paused():  # (a batch makes no cycles; see there)
            client = pulsar_client(url)
            try:
                consumer = answered(url, lambda: consume.subscribe(client, topic))
                got = consume.receive(
                    consumer,
                    required,
                    months,
                    max_messages=pulsar.max_messages,
                    idle_ms=pulsar.idle_ms,
                    max_seconds=pulsar.max_seconds,
                )
                context.log.info(f"received {len(got.messages)} message(s) from {topic}")
                if got.stalled:
                    context.log.warning(stall_warning(got, pulsar))
                events = [event for event, _ in got.events]
                locks = lake.locks()
                try:
                    with locks.hold(f"publish:bronze.{TABLE}", what=f"Publishing bronze.{TABLE}"):
                        landed = files.landed_identities(lake, TABLE, {e.month for e in events})
                        by_month, dropped = consume.new_events(events, landed)
                        batch = consume.batch_id([e for es in by_month.values() for e in es])
                        at = consume.now()
                        written = {
                            month: files.write_stream_file(
                                lake, TABLE, month, batch, consume.to_table(evs, batch, topic, at)
                            )
                            for month, evs in sorted(by_month.items())
                        }
                        if got.messages:
                            record = {
                                "batch_id": batch,
                                "topic": topic,
                                "received": len(got.messages),
                                "rows_by_month": {m: len(e) for m, e in sorted(by_month.items())},
                                "duplicates_removed": dropped,
                                "dead_letter_reasons": consume.reasons(got.poison),
                                "files": sorted(written.values()),
                                "run_id": context.run_id,
                            }
                            files.write_batch_record(lake, context.run_id, record)
                finally:
                    locks.close()
                consume.dead_letter(client, topic, got.poison)
                fault("stream.before_ack")
                for msg in got.messages:
                    consumer.acknowledge(msg)
                consumer.close()
            finally:
                client.close()
        yield [dead_letter_outcome(got.poison, topic)]
        rows = {month: len(evs) for month, evs in by_month.items()}
        yield dg.MaterializeResult(
            metadata={
                "topic": topic,
                "received": len(got.messages),
                "rows": sum(rows.values()),
                "rows_by_month": dict(sorted(rows.items())),
                "duplicates_removed": dropped,
                "dead_lettered": len(got.poison),
                "batch_id": batch if rows else "",
                "files": sorted(written.values()),
                # Every month this batch delivered, landed now or by an attempt killed before
                # its acknowledgement (whose rows are in Bronze already): Silver rebuilds them
                # (silver_sensor). The digest names the messages received, whatever landed.
                "months": sorted({e.month for e in events}),
                "received_id": received_id(events, batch, dropped),
            }
        )

    return build_table_asset(spec, DECLS, {"lake", "pulsar"}, body)
