"""A bounded batch from Pulsar into Bronze Parquet, acknowledged only once it is durable.

The order is what makes a kill at any moment safe:

1. receive up to ``max_messages`` (or until the topic is idle for ``idle_ms``);
2. decode; a poison message (undecodable, not the table's columns, no valid month) is set
   aside with its reason;
3. drop events already landed (same ``source`` + ``line``, in this batch or in a stream file
   of the month): a redelivered message lands once;
4. write one file per month, ``month=…/stream-<batch>.parquet`` beside the batch path's
   ``data.parquet`` (a re-ingest of the month replaces only ``data.parquet``), each written
   to a temporary name, fsynced and renamed;
5. send the poison messages to the dead-letter topic (and wait for the broker);
6. acknowledge every message received.

Killed before 6, the broker redelivers the batch and step 3 removes what 4 wrote; killed
during 4, a month's file is either whole or absent. The batch id is a digest of the events'
identities, so the same messages always make the same file names.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from onering_assets.stream.events import Event, PoisonMessageError, dead_letter_topic, decode

SUBSCRIPTION = "onering-bronze"


@dataclass
class Received:
    """What one bounded batch held, before anything is written."""

    messages: list[Any] = field(default_factory=list)
    events: list[tuple[Event, Any]] = field(default_factory=list)
    poison: list[tuple[Any, str]] = field(default_factory=list)


def reasons(poison: list[tuple[Any, str]]) -> dict[str, int]:
    """How many poison messages were set aside for each reason."""
    return dict(sorted(Counter(reason for _, reason in poison).items()))


def subscribe(client: Any, topic: str) -> Any:
    """The Bronze subscription (Shared: redelivery and negative acks work on pulsar-lite)."""
    import pulsar

    return client.subscribe(  # (callers wrap it in replay.answered)
        topic,
        SUBSCRIPTION,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        receiver_queue_size=1000,
    )


def receive(
    consumer: Any,
    required: tuple[str, ...],
    months: frozenset[str],
    *,
    max_messages: int,
    idle_ms: int,
    max_seconds: float = 60.0,
) -> Received:
    """Receive and decode up to ``max_messages`` or for ``max_seconds``.

    The time bound means a trickle cannot keep a batch open; it also ends early when no
    message arrives for ``idle_ms``.
    """
    import time

    import pulsar

    got = Received()
    deadline = time.monotonic() + max_seconds
    while len(got.messages) < max_messages and time.monotonic() < deadline:
        try:
            msg = consumer.receive(timeout_millis=idle_ms)
        except pulsar.Timeout:
            break
        got.messages.append(msg)
        try:
            got.events.append((decode(msg.data(), msg.properties(), required, months), msg))
        except PoisonMessageError as reason:
            got.poison.append((msg, str(reason)))
    return got


def identity(event: Event) -> tuple[str, int]:
    return event.source, event.line


def batch_id(events: list[Event]) -> str:
    """``stream-<digest>`` of the events' identities: the same batch, the same files."""
    digest = hashlib.sha256()
    for source, line in sorted(identity(e) for e in events):
        digest.update(f"{source}\x00{line}\n".encode())
    return f"stream-{digest.hexdigest()[:16]}"


def new_events(
    events: list[Event], landed: dict[str, set[tuple[str, int]]]
) -> tuple[dict[str, list[Event]], int]:
    """Events by month that are in no stream file yet, once each; and how many were dropped.

    ``landed`` maps a month to the identities its stream files already hold.
    """
    seen: set[tuple[str, int]] = set()
    by_month: dict[str, list[Event]] = {}
    dropped = 0
    for event in events:
        key = identity(event)
        if key in seen or key in landed.get(event.month, set()):
            dropped += 1
            continue
        seen.add(key)
        by_month.setdefault(event.month, []).append(event)
    return by_month, dropped


def stream_source(event_source: str, topic: str) -> str:
    """``_source`` of a streamed row: the landed file, and the topic it came through."""
    return f"{event_source} via {topic}"


def to_table(events: list[Event], batch: str, topic: str, ingested_at: datetime) -> pa.Table:
    """Bronze rows: the landed columns as strings, then the batch path's ingestion columns.

    Those are ``_batch_id``, ``_ingested_at``, ``_source``, ``_row``, ``_partition``, in the
    batch path's order, so a streamed file has exactly a batch file's schema.
    """
    columns: list[str] = []
    for event in events:
        columns.extend(c for c in event.row if c not in columns)
    data = {c: pa.array([e.row.get(c) for e in events], pa.string()) for c in columns}
    n = len(events)
    data["_batch_id"] = pa.array([batch] * n, pa.string())
    data["_ingested_at"] = pa.array([ingested_at] * n, pa.timestamp("ms", tz="UTC"))
    data["_source"] = pa.array([stream_source(e.source, topic) for e in events], pa.string())
    data["_row"] = pa.array([e.line for e in events], pa.uint64())
    data["_partition"] = pa.array([e.month for e in events], pa.string())
    return pa.table(data)


def now() -> datetime:
    return datetime.now(UTC)


def dead_letter(client: Any, topic: str, poison: list[tuple[Any, str]]) -> None:
    """Send each poison message, with its reason, to ``<topic>-DLQ``; wait for the broker."""
    if not poison:
        return
    producer = client.create_producer(dead_letter_topic(topic), batching_enabled=False)
    try:
        for msg, reason in poison:
            properties = dict(msg.properties())
            properties.update({"reason": reason, "origin_message_id": str(msg.message_id())})
            key = msg.partition_key()
            producer.send(msg.data(), properties=properties, partition_key=key or None)
    finally:
        producer.close()
