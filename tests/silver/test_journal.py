"""The Silver publish journal on chDB: done is a tombstone INSERT, never a DELETE per publish.

What the roll-forward relies on (onering_assets/journal.py): an entry is pending from its
write until its done, whichever journal object (process) marks it; the same run writing the
same table again after a done is pending again; compaction of finished rows never removes a
pending entry; a row written before tombstones existed (no nonce) is still finished by done.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from onering_assets import journal
from onering_assets.resources.clickhouse import ClickHouseResource


@pytest.fixture
def client(tmp_path: Path) -> Iterator:
    ch = ClickHouseResource(dsn=f"chdb://{tmp_path / 'clickhouse'}")
    yield ch.get_client()
    ch.close()


def entry(run: str, table: str = "airlines", parts: list[str] | None = None) -> journal.Entry:
    return journal.Entry(run, "silver", table, {"partitions": parts})


class Recording:
    """The client, recording every statement run through ``command``."""

    def __init__(self, client) -> None:
        self.client, self.commands = client, []

    def command(self, sql: str, **kwargs):
        self.commands.append(sql)
        return self.client.command(sql, **kwargs)

    def query(self, sql: str, **kwargs):
        return self.client.query(sql, **kwargs)

    def deletes(self) -> list[str]:
        return [sql for sql in self.commands if sql.startswith("DELETE")]


def test_an_entry_is_pending_from_write_to_done_in_any_process(client) -> None:
    writer = journal.ClickHouseJournal(client)
    e = entry("r1", parts=["2013-01"])
    writer.write(e)
    assert writer.pending() == [e]
    other = journal.ClickHouseJournal(client)  # another process recovering: reads, then marks
    (found,) = other.pending("silver", "airlines")
    other.done(found)
    assert writer.pending() == [] == other.pending()
    rows = client.query(f"SELECT key, entry FROM {journal.JOURNAL_TABLE}").result_rows
    assert len(rows) == 2 and sorted(text for _, text in rows)[0] == ""  # entry + tombstone


def test_done_by_a_fresh_object_finds_the_row_itself(client) -> None:
    journal.ClickHouseJournal(client).write(entry("r1"))
    journal.ClickHouseJournal(client).done(entry("r1"))  # neither wrote nor read it
    assert journal.ClickHouseJournal(client).pending() == []


def test_the_same_run_and_table_written_again_after_done_is_pending_again(client) -> None:
    jr = journal.ClickHouseJournal(client)
    first, retry = entry("r1", parts=["2013-01"]), entry("r1", parts=["2013-02"])
    jr.write(first)
    jr.done(first)
    jr.write(retry)  # a step retry of the same run: same key, a new row
    assert journal.ClickHouseJournal(client).pending() == [retry]
    jr.write(first)  # and the very same entry again: pending again too
    assert sorted(e.payload["partitions"][0] for e in jr.pending()) == ["2013-01", "2013-02"]


def test_publish_runs_no_delete_and_compaction_keeps_pending_entries(
    client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "COMPACT_AFTER", 3)
    recorded = Recording(client)
    jr = journal.ClickHouseJournal(recorded)  # type: ignore[arg-type]
    for i in range(2):
        journal.publish(jr, entry(f"r{i}"), lambda e: None, lambda e: None)
    jr.write(entry("crashed", "planes"))
    assert jr.pending() == [entry("crashed", "planes")]  # 2 finished pairs: below the limit
    assert recorded.deletes() == []
    journal.publish(jr, entry("r2"), lambda e: None, lambda e: None)
    assert jr.pending() == [entry("crashed", "planes")]  # 3 finished: compacted on this read
    assert len(recorded.deletes()) == 1
    rows = client.query(f"SELECT entry FROM {journal.JOURNAL_TABLE}").result_rows
    assert [journal.Entry.from_json(text) for (text,) in rows] == [entry("crashed", "planes")]


def test_a_row_written_before_tombstones_is_finished_by_done(client) -> None:
    jr = journal.ClickHouseJournal(client)
    jr.write(entry("setup"))  # creates the table
    jr.done(entry("setup"))
    old = entry("old")  # as the DELETE-based journal wrote it: the key, no nonce
    client.command(
        f"INSERT INTO {journal.JOURNAL_TABLE} VALUES ({{k:String}}, {{e:String}})",
        parameters={"k": old.key, "e": old.to_json()},
    )
    reader = journal.ClickHouseJournal(client)
    assert reader.pending() == [old]
    reader.done(old)
    assert journal.ClickHouseJournal(client).pending() == []
    sql_view = client.query(journal.PENDING_SQL).result_rows
    assert sql_view == []


def test_done_matches_an_equal_entry_whatever_its_payloads_key_order(client) -> None:
    jr = journal.ClickHouseJournal(client)
    jr.write(journal.Entry("r1", "silver", "airlines", {"partitions": None, "x": 1}))
    jr.done(journal.Entry("r1", "silver", "airlines", {"x": 1, "partitions": None}))
    assert journal.ClickHouseJournal(client).pending() == []
