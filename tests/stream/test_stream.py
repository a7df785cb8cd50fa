"""Flights through Pulsar into Bronze: real pulsar-lite on loopback, the real asset and Silver.

What each test proves:
- a streamed month lands with exactly the batch path's columns and rows (after the ingestion
  columns), in a file of its own beside the batch path's;
- poison messages go to the dead-letter topic, with their reason, and are counted in a check;
- a message published or delivered twice lands once;
- a consumer SIGKILLed between writing and acknowledging loses and duplicates nothing in
  Silver (a real `onering materialize` process, a real kill);
- a batch re-ingest of a month replaces only its own file; Silver reads both.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from onering_assets.definitions import build_definitions
from onering_assets.resources import SourceResource
from onering_assets.runner import execute, instance_for
from onering_assets.settings import Settings
from onering_assets.stream.assets import DEAD_LETTERS, KEY
from onering_assets.stream.events import DEFAULT_TOPIC, dead_letter_topic
from onering_assets.stream.replay import client, replay
from tests.conftest import MEDALLION_SELECTION, run, silver_query
from tests.stream.test_silver_sensor import evaluate
from tests.test_faults import ok, onering

BRONZE = dg.AssetKey(["bronze", "flights"])
SILVER = dg.AssetKey(["silver", "flights"])
JAN = "2013-01"
POISON_REASONS = [
    "missing column(s) carrier",
    "missing the source or line property",
    "missing the source or line property",
    "no valid month ('2014', '1')",
    "non-string value(s) in dep_delay",
    "not a JSON object but list",
    "undecodable: RecursionError",
    "undecodable: UnicodeDecodeError",
]


def landed(settings: Settings) -> Any:
    return SourceResource(path=str(settings.source_dir)).land("flights")


def publish_month(url: str, settings: Settings, month: str, limit: int | None = None) -> int:
    landing = landed(settings)
    done = replay(
        url, DEFAULT_TOPIC, landing.table, landing.lines, landing.label, months={month}, limit=limit
    )
    return done.published


def consume(settings: Settings, instance: dg.DagsterInstance) -> dict[str, Any]:
    summary = run(settings, instance=instance, select={KEY})
    assert summary.success, summary.failures
    event = instance.get_latest_materialization_event(KEY)
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def stream_files(settings: Settings, month: str) -> list[Path]:
    return sorted((settings.lake_dir / "bronze" / "flights" / f"month={month}").glob("stream-*"))


def by_row(table: pa.Table) -> pa.Table:
    return table.sort_by("_row")


def latest_evaluation(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey
) -> dg.AssetCheckEvaluation:
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    event = record.event
    assert event is not None and event.dagster_event is not None
    data = event.dagster_event.event_specific_data
    assert isinstance(data, dg.AssetCheckEvaluation)
    return data


def test_a_streamed_month_lands_the_batch_paths_columns_and_rows_in_its_own_file(
    settings: Settings, url: str, instance: dg.DagsterInstance
) -> None:
    published = publish_month(url, settings, JAN)
    meta = consume(settings, instance)
    assert meta["received"] == published == meta["rows"] == 27_004
    assert meta["rows_by_month"] == {JAN: published} and meta["dead_lettered"] == 0
    [file] = stream_files(settings, JAN)
    assert file.name == f"{meta['batch_id']}.parquet"

    # The batch path lands the same file's January beside it.
    assert run(settings, instance=instance, select={BRONZE}, first=JAN, last=JAN).success
    assert stream_files(settings, JAN) == [file]
    batch = by_row(pq.read_table(file.parent / "data.parquet"))
    streamed = by_row(pq.read_table(file))
    assert streamed.schema == batch.schema  # the same columns, types and order
    same = [c for c in batch.column_names if c not in ("_batch_id", "_ingested_at", "_source")]
    assert streamed.select(same).equals(batch.select(same))  # row for row, _row included
    label = landed(settings).label
    assert set(streamed["_source"].to_pylist()) == {f"{label} via {DEFAULT_TOPIC}"}

    # Nothing new on the topic: the next batch lands nothing and writes no file; replaying
    # the month again lands nothing either (each event is a row Bronze already holds).
    again = consume(settings, instance)
    assert (again["received"], again["rows"], again["files"]) == (0, 0, [])
    publish_month(url, settings, JAN, limit=100)
    replayed = consume(settings, instance)
    assert (replayed["received"], replayed["duplicates_removed"], replayed["rows"]) == (100, 100, 0)
    assert stream_files(settings, JAN) == [file]


def _bad_messages(url: str) -> int:
    """Poison messages (one way each of not being a flight), then one good message."""
    good = landed_row_template()
    spoiled: list[tuple[bytes, dict[str, str]]] = [
        (b"\xff\xfe not json", {"line": "2"}),
        (b"[1, 2]", {"line": "3"}),
        (b"[" * 100_000 + b"]" * 100_000, {"line": "8"}),
        (json.dumps(good).encode(), {"line": "\u00b2"}),
        (json.dumps({k: v for k, v in good.items() if k != "carrier"}).encode(), {"line": "4"}),
        (json.dumps({**good, "dep_delay": 12}).encode(), {"line": "5"}),
        (json.dumps({**good, "year": "2014"}).encode(), {"line": "6"}),
        (json.dumps(good).encode(), {}),
    ]
    pulsar_client = client(url)
    try:
        producer = pulsar_client.create_producer(DEFAULT_TOPIC)
        for data, line in spoiled:
            producer.send(data, properties={"source": "t.csv", **line}, partition_key="k")
        producer.send(json.dumps(good).encode(), properties={"source": "t.csv", "line": "7"})
        producer.close()
    finally:
        pulsar_client.close()
    return len(spoiled)


def landed_row_template() -> dict[str, str]:
    return {
        "year": "2013", "month": "1", "day": "1", "dep_time": "517", "sched_dep_time": "515",
        "dep_delay": "2", "arr_time": "830", "sched_arr_time": "819", "arr_delay": "11",
        "carrier": "UA", "flight": "1545", "tailnum": "N14228", "origin": "EWR", "dest": "IAH",
        "air_time": "227", "distance": "1400", "hour": "5", "minute": "15",
        "time_hour": "2013-01-01 05:00:00",
    }  # fmt: skip


def test_poison_messages_go_to_the_dead_letter_topic_with_their_reason_and_are_counted(
    settings: Settings, url: str, instance: dg.DagsterInstance
) -> None:
    # Before any batch, the check run alone passes and says so (`onering check` after
    # `make demo`, which does not consume, stays green).
    check = dg.AssetCheckKey(KEY, DEAD_LETTERS)
    defs = build_definitions(settings)
    execute(defs, instance, checks={check}, progress=False)
    before = latest_evaluation(instance, check)
    assert before.passed and str(before.metadata["summary"].value).startswith("no batch consumed")

    poison = _bad_messages(url)
    meta = consume(settings, instance)
    assert (meta["received"], meta["dead_lettered"], meta["rows"]) == (poison + 1, poison, 1)
    evaluation = latest_evaluation(instance, check)
    assert evaluation.passed is False and evaluation.metadata["failing"].value == poison

    # Run alone, the check reports what the last batch dead-lettered (it re-reads no topic).
    execute(defs, instance, checks={check}, progress=False)
    alone = latest_evaluation(instance, check)
    assert alone.passed is False and alone.metadata["failing"].value == poison
    assert str(alone.metadata["summary"].value).startswith("the last batch (run ")
    assert f"sent {poison} message(s) to the DLQ" in str(alone.metadata["summary"].value)

    pulsar_client = client(url)
    try:
        import pulsar

        dlq = pulsar_client.subscribe(
            dead_letter_topic(DEFAULT_TOPIC),
            "test",
            initial_position=pulsar.InitialPosition.Earliest,
        )
        reasons = sorted(dlq.receive(5000).properties()["reason"] for _ in range(poison))
    finally:
        pulsar_client.close()
    assert reasons == POISON_REASONS
    [ledger] = (settings.lake_dir / "stream" / "flights_events").glob("*.json")
    record = json.loads(ledger.read_text())
    assert record["dead_letter_reasons"] == Counter(POISON_REASONS)
    assert (record["received"], record["rows_by_month"]) == (poison + 1, {JAN: 1})


def test_a_message_published_twice_lands_once(
    settings: Settings, url: str, instance: dg.DagsterInstance
) -> None:
    first = publish_month(url, settings, JAN, limit=50)
    assert consume(settings, instance)["rows"] == first
    again = publish_month(url, settings, JAN, limit=80)  # the same 50, then 30 new
    meta = consume(settings, instance)
    assert (meta["received"], meta["duplicates_removed"], meta["rows"]) == (again, 50, 30)
    rows = pa.concat_tables(pq.read_table(p) for p in stream_files(settings, JAN))
    assert rows.num_rows == 80 and len(set(rows["_row"].to_pylist())) == 80


def test_a_consumer_killed_between_write_and_ack_loses_and_duplicates_nothing(
    settings: Settings, url: str
) -> None:
    state, source = settings.state_dir, settings.source_dir
    published = publish_month(url, settings, JAN, limit=500)
    select = ("--select", f'key:"{KEY.to_user_string()}"')
    killed = onering(state, source, "materialize", *select, fault="stream.before_ack")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    [written] = stream_files(settings, JAN)
    assert pq.read_metadata(written).num_rows == published  # durable before the kill

    ok(onering(state, source, "materialize", *select))  # the broker redelivers the batch
    assert stream_files(settings, JAN) == [written]  # removed as duplicates, no new file
    # Nothing new landed, yet the daemon's sensor still rebuilds January's Silver: the rows
    # the killed attempt wrote are in Bronze and no Silver run was requested for them.
    with instance_for(settings) as instance:
        requests, _ = evaluate(build_definitions(settings), instance, None)
    assert [r.partition_key for r in requests] == [JAN]
    medallion = ("--select", MEDALLION_SELECTION, "--from", JAN, "--to", JAN)
    ok(onering(state, source, "materialize", *medallion))
    # The batch path then landed all of January too, so each streamed flight came twice: the
    # row landed last (the batch path's) wins, the streamed one is a duplicate-key reject.
    assert silver_query(settings, "SELECT count() FROM silver.flights") == [(27_004,)]
    rejected = silver_query(
        settings,
        "SELECT count(), uniqExact(_source, _row) FROM silver.flights_rejects "
        "WHERE _reject_reason = 'duplicate key' AND _source LIKE '% via %'",
    )
    assert rejected == [(published, published)]  # each once: nothing lost, nothing twice
    assert silver_query(settings, "SELECT count() FROM silver.flights_rejects") == [(published,)]


def test_a_batch_reingest_replaces_only_its_own_file_and_silver_reads_both(
    settings: Settings, url: str, instance: dg.DagsterInstance
) -> None:
    feb = "2013-02"
    landing = landed(settings)
    first = pa.array([m == "2" for m in landing.table["month"].to_pylist()])
    rows = landing.table.filter(first).slice(0, 20)
    lines = landing.lines.filter(first).slice(0, 20)
    new_flights = pa.array([str(9000 + i) for i in range(20)], pa.string())  # keys of their own
    rows = rows.set_column(rows.column_names.index("flight"), "flight", new_flights)
    replay(url, DEFAULT_TOPIC, rows, lines, "planted.csv")
    assert consume(settings, instance)["rows_by_month"] == {feb: 20}
    [streamed] = stream_files(settings, feb)

    for _ in range(2):  # ingest February, then re-ingest it
        assert run(settings, instance=instance, select={BRONZE}, first=feb, last=feb).success
        assert stream_files(settings, feb) == [streamed]
    assert run(settings, instance=instance, select={SILVER}, first=feb, last=feb).success
    batch_rows = pq.read_metadata(streamed.parent / "data.parquet").num_rows
    assert silver_query(settings, "SELECT count() FROM silver.flights") == [(batch_rows + 20,)]
    planted = silver_query(
        settings, "SELECT count() FROM silver.flights WHERE flight BETWEEN 9000 AND 9019"
    )
    assert planted == [(20,)]
