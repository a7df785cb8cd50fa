"""Crash-consistent publication: a journal written before the first swap, rolled forward.

ClickHouse cannot switch several tables at once for readers, and a lake cannot move several
files at once. So a publish is journaled: before its first swap, a run durably records every
(table, partition) it will replace and the staging objects that hold the new versions. Each
swap is idempotent (``REPLACE PARTITION … FROM`` keeps its source; a file move is skipped
once its source is gone), so a crashed publish is finished by redoing its remaining swaps
from the kept staging, on the next start of any process that opens the store and before any
later publish of the same table. Then the entry is marked done and its staging dropped.

One entry shape and one roll-forward path serve both layers; the journal lives in the store
it protects (a ClickHouse table for Silver, small JSON objects in the lake for Bronze).
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow.fs as pafs

from onering_assets.chtables import table_exists

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

FAULT_ENV = "ONERING_FAULT"


def fault(point: str) -> None:
    """Test-only: SIGKILL this process at ``point`` when ``ONERING_FAULT`` names it.

    The variable is read here, at the moment, never at import; unset it costs a dict lookup.
    tests/test_faults.py uses it to kill a real run at the worst moment.
    """
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def run_token(run_id: str) -> str:
    """A run id as a name part: lower-case letters and digits only (a Dagster uuid's hex)."""
    return re.sub(r"[^a-z0-9]", "", run_id.lower())[:32] or "run"


@dataclass(frozen=True)
class Entry:
    """One run's publication of one table: where the new versions are and where they go."""

    run: str
    layer: str
    table: str
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.layer}.{self.table}.{self.run}"

    def to_json(self) -> str:
        return json.dumps(
            {"run": self.run, "layer": self.layer, "table": self.table, "payload": self.payload}
        )

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data = json.loads(text)
        return cls(data["run"], data["layer"], data["table"], data.get("payload", {}))


Apply = Callable[[Entry], None]


class Journal(Protocol):
    """Where pending entries are kept until their publish is complete."""

    def write(self, entry: Entry) -> None: ...

    def pending(self, layer: str | None = None, table: str | None = None) -> list[Entry]: ...

    def done(self, entry: Entry) -> None: ...


def publish(journal: Journal, entry: Entry, apply: Apply, cleanup: Apply) -> None:
    """Journal, swap, mark done, drop staging: a crash at any point is finished by ``recover``."""
    journal.write(entry)
    fault(f"{entry.layer}.publish.after_journal")
    apply(entry)
    journal.done(entry)
    cleanup(entry)


def recover(
    journal: Journal,
    apply: Apply,
    cleanup: Apply,
    *,
    layer: str | None = None,
    table: str | None = None,
) -> list[Entry]:
    """Finish every pending publish (of one table, or all): redo its swaps, mark it done."""
    entries = journal.pending(layer, table)
    for entry in entries:
        apply(entry)
        journal.done(entry)
        cleanup(entry)
    return entries


class LakeJournal:
    """Entries as small JSON objects under ``<lake>/_journal/`` (a local folder or S3)."""

    def __init__(self, fs: pafs.FileSystem, base: str) -> None:
        self.fs, self.folder = fs, f"{base}/_journal"
        self.local = isinstance(fs, pafs.LocalFileSystem)

    def _path(self, entry: Entry) -> str:
        return f"{self.folder}/{entry.key}.json"

    def write(self, entry: Entry) -> None:
        path, data = self._path(entry), entry.to_json().encode()
        if not self.local:
            # One S3 PUT is atomic and durable once acknowledged.
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            return
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        Path(tmp).replace(path)
        fsync_dir(self.folder)

    def pending(self, layer: str | None = None, table: str | None = None) -> list[Entry]:
        selector = pafs.FileSelector(self.folder, allow_not_found=True)
        entries = []
        for info in self.fs.get_file_info(selector):
            if not info.path.endswith(".json"):
                continue
            with self.fs.open_input_stream(info.path) as stream:
                entry = Entry.from_json(stream.read().decode())
            if (layer is None or entry.layer == layer) and (table is None or entry.table == table):
                entries.append(entry)
        return sorted(entries, key=lambda e: e.key)

    def done(self, entry: Entry) -> None:
        self.fs.delete_file(self._path(entry))
        if self.local:
            fsync_dir(self.folder)


def fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


JOURNAL_DATABASE = "onering"
JOURNAL_TABLE = f"{JOURNAL_DATABASE}.publish_journal"
# A row whose entry is empty marks the row of the same key done (a tombstone); the
# pending entries, as SQL (the class reads all rows in one query and decides in Python).
PENDING_SQL = (
    f"SELECT key, entry FROM {JOURNAL_TABLE} WHERE entry != '' "
    f"AND key NOT IN (SELECT key FROM {JOURNAL_TABLE} WHERE entry = '') ORDER BY key"
)
# Finished rows (an entry and its tombstone) are deleted once this many have piled up.
COMPACT_AFTER = 256


class ClickHouseJournal:
    """Entries as rows of ``onering.publish_journal``, fsynced on insert.

    Every write is a row of its own (the entry's key and a nonce), and done inserts an empty
    tombstone row with the same key: two INSERTs, never a DELETE, which in ClickHouse waits
    behind the merges a publish's partition swaps start (about 0.3 s a table at 1×). Finished
    pairs are deleted in one statement once ``COMPACT_AFTER`` of them have piled up; a later
    write has a new nonce, so compaction never removes a pending entry.

    The table is created by the first publish, never by a reader: checks alone write nothing.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._rows: dict[str, str] = {}  # entry JSON -> the key of the row that holds it

    def _exists(self) -> bool:
        return table_exists(self.client, JOURNAL_DATABASE, "publish_journal")

    def _insert(self, key: str, text: str) -> None:
        self.client.command(
            f"INSERT INTO {JOURNAL_TABLE} (key, entry) VALUES ({{k:String}}, {{e:String}})",
            parameters={"k": key, "e": text},
        )

    def write(self, entry: Entry) -> None:
        self.client.command(f"CREATE DATABASE IF NOT EXISTS {JOURNAL_DATABASE}")
        self.client.command(
            f"CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (key String, entry String) "
            "ENGINE = MergeTree ORDER BY key "
            "SETTINGS fsync_after_insert = 1, fsync_part_directory = 1"
        )
        text = entry.to_json()
        key = f"{entry.key}#{uuid.uuid4().hex}"
        self._insert(key, text)
        self._rows[_canonical(text)] = key

    def pending(self, layer: str | None = None, table: str | None = None) -> list[Entry]:
        if not self._exists():
            return []
        rows = self.client.query(f"SELECT key, entry FROM {JOURNAL_TABLE}").result_rows
        finished = {key for key, text in rows if not text}
        if len(finished) >= COMPACT_AFTER:
            self.client.command(
                f"DELETE FROM {JOURNAL_TABLE} WHERE key IN {{keys:Array(String)}}",
                parameters={"keys": sorted(finished)},
            )
        entries = []
        for key, text in sorted((str(k), str(t)) for k, t in rows):
            if not text or key in finished:
                continue
            entry = Entry.from_json(text)
            self._rows[_canonical(text)] = key
            if (layer is None or entry.layer == layer) and (table is None or entry.table == table):
                entries.append(entry)
        return entries

    def done(self, entry: Entry) -> None:
        text = _canonical(entry.to_json())
        key = self._rows.pop(text, None)
        if key is None:  # an entry this object neither wrote nor read: find its rows
            self.pending()
            key = self._rows.pop(text, None)
        if key is not None:
            self._insert(key, "")


def _canonical(text: str) -> str:
    """An entry's JSON with its keys sorted: equal entries match whatever their dict order."""
    return json.dumps(json.loads(text), sort_keys=True)
