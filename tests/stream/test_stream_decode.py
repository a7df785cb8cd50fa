"""The fast path of a batch (a block of payloads parsed at once) says what ``decode`` says.

What each test proves:
- ``decode_block`` gives every message the same outcome as ``decode`` one by one: the same
  event (identity, month, row) or the same poison reason, for good rows, rows with nulls and
  every kind of poison, mixed in one block, and in blocks the fast parse refuses;
- ``to_table`` of block events is the table the one-by-one events make, row for row;
- ``gather`` (how ``to_table`` picks the rows) is ``take``, whether the rows come in one run,
  a few (slices) or many;
- a batch ends once it has received the topic's last message, without waiting ``idle_ms``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from onering_assets.catalog import load_catalog
from onering_assets.partitions import MONTHLY
from onering_assets.stream import consume
from onering_assets.stream.events import (
    DEFAULT_TOPIC,
    Event,
    PoisonMessageError,
    decode,
    decode_block,
    parse_block,
)
from onering_assets.stream.replay import client
from tests.stream.test_stream import landed_row_template

REQUIRED = tuple(
    c.name for c in next(t for t in load_catalog().bronze if t.name == "flights").columns
)
MONTHS = frozenset(MONTHLY.get_partition_keys())


def good(line: int, **changes: Any) -> tuple[bytes, dict[str, str]]:
    row = {**landed_row_template(), "flight": str(line), **changes}
    return json.dumps(row).encode(), {"source": "t.csv", "line": str(line)}


def one_by_one(data: bytes, properties: dict[str, str]) -> Event | str:
    try:
        return decode(data, properties, REQUIRED, MONTHS)
    except PoisonMessageError as reason:
        return str(reason)


def outcome(result: Event | str) -> Any:
    """What a message became: its reason, or its identity, month and row."""
    if isinstance(result, str):
        return result
    if result.block is not None:
        row = result.block.slice(result.position, 1).to_pylist()[0]
    else:
        row = dict(result.row or {})
    return (result.source, result.line, result.month, row)


def messages() -> list[tuple[bytes, dict[str, str]]]:
    template = landed_row_template()
    reordered = dict(reversed(list(template.items())))
    return [
        good(1),
        good(2, dep_time=None, arr_time=None),  # nulls: decoded on its own
        good(3, year=" 2013 ", month="2"),  # (padded, as the batch path reads it)
        (b"\xff\xfe not json", {"source": "t.csv", "line": "4"}),
        (b"[1, 2]", {"source": "t.csv", "line": "5"}),
        (b"[" * 100_000 + b"]" * 100_000, {"source": "t.csv", "line": "6"}),
        (good(7)[0], {"source": "t.csv", "line": "\u00b2"}),
        (json.dumps({k: v for k, v in template.items() if k != "carrier"}).encode(), {}),
        good(9, dep_delay=12),
        good(10, year="2014"),
        (json.dumps(template).encode(), {"source": "t.csv"}),
        (json.dumps(reordered).encode(), {"source": "t.csv", "line": "12"}),
        (json.dumps({**template, "extra": "x"}).encode(), {"source": "t.csv", "line": "13"}),
        (b"\xef\xbb\xbf" + good(14)[0], {"source": "t.csv", "line": "14"}),  # a BOM
        (b" " + good(15)[0], {"source": "t.csv", "line": "15"}),
        (good(16)[0][:-1] + b',"year":"2013"}', {"source": "t.csv", "line": "16"}),  # twice
        (good(17)[0] + b" " + good(18)[0], {"source": "t.csv", "line": "17"}),  # two objects
        (b"", {"source": "t.csv", "line": "19"}),
        (b"{}", {"source": "t.csv", "line": "20"}),
        (good(21)[0].replace(b'"UA"', b'"U\\ud800"'), {"source": "t.csv", "line": "21"}),
        (good(22)[0].replace(b'"UA"', b'"U\\u00c9"'), {"source": "t.csv", "line": "22"}),
        (good(23)[0].replace(b'"UA"', b'{"a":"b"}'), {"source": "t.csv", "line": "23"}),
        (good(24)[0].replace(b'"UA"', b"NaN"), {"source": "t.csv", "line": "24"}),
        good(25, month="13"),
        good(26),
    ]


@pytest.mark.parametrize("which", ["mixed", "each alone", "the good ones"])
def test_a_block_decodes_each_message_exactly_as_one_by_one(which: str) -> None:
    msgs = messages()
    if which == "the good ones":  # the fast parse takes the whole block (keys in any order)
        msgs = [m for m in msgs if m[1].get("line") in {"1", "2", "3", "12", "22", "26"}]
        assert parse_block([d for d, _ in msgs], REQUIRED) is not None
    # json.loads takes these, the fast parse does not (its block is decoded one by one):
    # an extra column, leading whitespace, a key twice.
    for line in ("13", "15", "16"):
        refused = [m for m in messages() if m[1].get("line") in {"1", line}]
        assert not isinstance(one_by_one(*refused[1]), str)
        assert parse_block([d for d, _ in refused], REQUIRED) is None
    blocks = [msgs] if which != "each alone" else [[m] for m in msgs]
    for block in blocks:
        fast = decode_block([d for d, _ in block], [p for _, p in block], REQUIRED, MONTHS)
        assert [outcome(r) for r in fast] == [outcome(one_by_one(*m)) for m in block]


def test_a_block_decoded_at_once_keeps_no_dict_per_row_and_lands_the_same_table() -> None:
    msgs = [good(i, dep_time=None) if i % 7 == 0 else good(i) for i in range(1, 200)]
    fast = decode_block([d for d, _ in msgs], [p for _, p in msgs], REQUIRED, MONTHS)
    slow = [one_by_one(*m) for m in msgs]
    assert all(isinstance(e, Event) for e in fast + slow)
    fast_events = [e for e in fast if isinstance(e, Event)]
    slow_events = [e for e in slow if isinstance(e, Event)]
    # Rows with a null are checked one by one, but point into the block like the others.
    assert all(e.row is None and e.block is not None for e in fast_events)
    assert all(e.row is not None for e in slow_events)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    picked = fast_events[::-1][::2]  # any subset, in any order (a month after de-duplication)
    expected = consume.to_table(
        [slow_events[fast_events.index(e)] for e in picked], "b", "topic", at
    )
    assert consume.to_table(picked, "b", "topic", at).equals(expected)
    assert consume.to_table(picked, "b", "topic", at).column_names[: len(REQUIRED)] == list(
        REQUIRED
    )
    assert consume.to_table([], "b", "topic", at).num_rows == 0
    assert expected["_row"].to_pylist() == [e.line for e in picked]


@pytest.mark.parametrize(
    "taken",
    [
        list(range(300)),  # the whole table: itself
        list(range(10, 300)),  # one run
        [*range(0, 50), *range(60, 120), 5, *range(200, 210)],  # a few runs, one out of order
        list(range(0, 300, 2)),  # many runs: one take
        list(range(299, -1, -1)),  # reversed
        [],
        [3, 3, 3, 4, 4],  # repeated rows
        [0, 300],  # a row past the end: refused, as take refuses it
        [-1],
    ],
)
def test_gather_is_take(taken: list[int]) -> None:
    table = pa.table({"a": [str(i) for i in range(300)], "b": list(range(300))})
    table = pa.concat_tables([table.slice(0, 100), table.slice(100)])  # (two chunks)
    if any(not 0 <= row < 300 for row in taken):
        with pytest.raises(IndexError):
            consume.gather(table, taken)
        return
    expected = table.take(pa.array(taken, pa.int64()))
    assert consume.gather(table, taken).equals(expected)


def test_a_batch_ends_at_the_topics_last_message_without_waiting_for_idle(url: str) -> None:
    pulsar_client = client(url)
    try:
        producer = pulsar_client.create_producer(DEFAULT_TOPIC, batching_enabled=False)
        for i in range(1, 11):
            data, properties = good(i)
            producer.send(data, properties=properties)
        producer.close()
        consumer = consume.subscribe(pulsar_client, DEFAULT_TOPIC)
        started = time.monotonic()
        got = consume.receive(consumer, REQUIRED, MONTHS, max_messages=100, idle_ms=20_000)
        assert time.monotonic() - started < 10  # not the 20 s of idle_ms
        assert len(got.messages) == len(got.events) == 10 and not got.poison
        for msg in got.messages:
            consumer.acknowledge(msg)
        consumer.close()
    finally:
        pulsar_client.close()


def test_a_batch_past_the_brokers_unacked_limit_stops_there_and_says_so(url: str) -> None:
    """pulsar-lite, like Pulsar, sends a Shared consumer no more than 50,000 unacked messages.

    A batch asked for more is flagged ``stalled`` (the asset warns, naming the limit) and
    loses nothing: the next batch gets the rest; the default batch is that limit.
    """
    from onering_assets.stream.assets import stall_warning
    from onering_assets.stream.resource import PulsarResource

    assert PulsarResource().max_messages == consume.UNACKED_LIMIT == 50_000
    topic = "persistent://public/default/unacked-limit"
    total = consume.UNACKED_LIMIT + 100
    pulsar_client = client(url)
    try:
        producer = pulsar_client.create_producer(
            topic, batching_enabled=False, block_if_queue_full=True
        )
        for i in range(1, total + 1):
            producer.send_async(b"x", None, properties={"source": "t.csv", "line": str(i)})
        producer.flush()
        producer.close()
        consumer = consume.subscribe(pulsar_client, topic)
        got = consume.receive(consumer, REQUIRED, MONTHS, max_messages=total, idle_ms=500)
        assert (got.stalled, len(got.messages)) == (True, consume.UNACKED_LIMIT)
        for msg in got.messages:
            consumer.acknowledge(msg)
        consumer.close()  # (as the asset does: its next batch is a new consumer)
        consumer = consume.subscribe(pulsar_client, topic)
        rest = consume.receive(consumer, REQUIRED, MONTHS, max_messages=total, idle_ms=500)
        assert not rest.stalled and len(rest.messages) == 100
        lines = {int(m.properties()["line"]) for m in got.messages + rest.messages}
        assert lines == set(range(1, total + 1))
        # What the asset logs for it names the limit and max_messages, and guesses nothing.
        warning = stall_warning(got, PulsarResource(max_messages=total))
        assert "after 50,000 message(s)" in warning and "max_messages (50,100" in warning
        assert "maxUnackedMessagesPerConsumer is 50,000" in warning
        assert "acknowledged already" in warning
        consumer.close()
    finally:
        pulsar_client.close()
