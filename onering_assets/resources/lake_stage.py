"""A run's staged lake files, written a piece at a time, then published or set aside.

``LakeResource.staging`` hands one of these to a run that writes a table: each partition's
file grows under ``_staging/<run>/`` as pieces arrive (one Parquet writer a partition), so
a file bigger than memory is staged a piece at a time. ``publish`` then moves them into
place as one journaled, crash-consistent publication; ``quarantine`` moves them to the
batch's quarantine instead; anything neither published nor journaled is deleted on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from onering_assets import journal
from onering_assets.resources.lake_files import parquet_writer

STAGING = "_staging"


def apply_moves(fs: pafs.FileSystem, base: str, entry: journal.Entry) -> None:
    """Move each staged file into place; a move whose source is gone was done already."""
    for i, (staged, final) in enumerate(entry.payload["moves"]):
        if fs.get_file_info(f"{base}/{staged}").type != pafs.FileType.File:
            continue
        fs.create_dir(f"{base}/{final}".rsplit("/", 1)[0], recursive=True)
        fs.move(f"{base}/{staged}", f"{base}/{final}")
        if i == 0:
            journal.fault(f"{entry.layer}.publish.after_first_move")
    if isinstance(fs, pafs.LocalFileSystem):
        for folder in {f"{base}/{final}".rsplit("/", 1)[0] for _, final in entry.payload["moves"]}:
            journal.fsync_dir(folder)


def drop_staged(fs: pafs.FileSystem, base: str, entry: journal.Entry) -> None:
    """Delete the run's staging folder of the entry's table."""
    folder = f"{base}/{STAGING}/{entry.run}/{entry.layer}/{entry.table}"
    if fs.get_file_info(folder).type == pafs.FileType.Directory:
        fs.delete_dir(folder)
    if isinstance(fs, pafs.LocalFileSystem):
        # Then the run's folders once empty: rmdir refuses a folder another step of the
        # same run is still writing into, where a recursive delete would not.
        for parent in (Path(folder).parent, Path(folder).parent.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()


@dataclass
class Writers:
    """Parquet files written a piece at a time: one writer a path, opened on first write."""

    fs: pafs.FileSystem
    open: dict[str, pq.ParquetWriter] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def write(self, path: str, data: pa.Table) -> None:
        """Append ``data`` to the file at ``path`` (created with ``data``'s schema)."""
        writer = self.open.get(path)
        if writer is None:
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            writer = self.open[path] = parquet_writer(path, data.schema, self.fs)
            self.rows[path] = 0
        if data.num_rows:
            writer.write_table(data)
        self.rows[path] += data.num_rows

    def close(self) -> None:
        """Finish every file (its footer); safe to call twice.

        Every writer is closed even when one fails (a full disk); the first failure is raised.
        """
        failure: BaseException | None = None
        while self.open:
            _, writer = self.open.popitem()
            try:
                writer.close()
            except BaseException as err:
                failure = failure or err
        if failure is not None:
            raise failure

    def discard(self) -> None:
        """Close and delete every file written (the work they were part of failed)."""
        with contextlib.suppress(Exception):  # the failure that brought us here is raised
            self.close()
        for path in self.rows:
            if self.fs.get_file_info(path).type == pafs.FileType.File:
                self.fs.delete_file(path)
        self.rows.clear()


@dataclass
class Staging:
    """One run's staged files of one table, and how to publish or drop them.

    Built by ``LakeResource.staging``, which holds the run's stage lock while it lives.
    ``publish_entry`` publishes a journal entry under the table's publication lock;
    ``cleanup`` deletes the run's staging folder of the table.
    """

    fs: pafs.FileSystem
    base: str
    layer: str
    table: str
    run_id: str
    relative_path: Callable[[str, str, str | None], str]
    publish_entry: Callable[[journal.Entry, list[str | None]], None]
    cleanup: Callable[[journal.Entry], None]
    writers: Writers = field(init=False)
    keys: list[str | None] = field(default_factory=list)
    done: bool = False

    def __post_init__(self) -> None:
        self.writers = Writers(self.fs)

    @property
    def run(self) -> str:
        return journal.run_token(self.run_id)

    def staged(self, key: str | None) -> str:
        """Where the partition's file is staged, relative to the lake's base."""
        return f"{STAGING}/{self.run}/{self.relative_path(self.layer, self.table, key)}"

    def write(self, key: str | None, data: pa.Table) -> None:
        """Append rows to the partition's staged file (an empty table still creates it)."""
        if key not in self.keys:
            self.keys.append(key)
        self.writers.write(f"{self.base}/{self.staged(key)}", data)

    def rows(self) -> dict[str | None, int]:
        """Rows staged so far, per partition."""
        return {k: self.writers.rows[f"{self.base}/{self.staged(k)}"] for k in self.keys}

    def entry(self) -> journal.Entry:
        moves = [[self.staged(k), self.relative_path(self.layer, self.table, k)] for k in self.keys]
        return journal.Entry(self.run, self.layer, self.table, {"moves": moves})

    def publish(self) -> list[str]:
        """Publish every staged partition at once (journaled; ``recover`` finishes a crash)."""
        self.writers.close()
        entry = self.entry()
        self.done = True  # from here publish_entry owns the files: rolled forward or dropped
        self.publish_entry(entry, self.keys)
        return [f"{self.base}/{final}" for _, final in entry.payload["moves"]]

    def quarantine(self, batch_id: str) -> list[str]:
        """Move every staged partition to the batch's quarantine (``<key or all>.parquet``)."""
        self.writers.close()
        folder = f"{self.base}/quarantine/{self.layer}/{self.table}/{batch_id}"
        self.fs.create_dir(folder, recursive=True)
        kept = []
        for key in self.keys:
            target = f"{folder}/{key or 'all'}.parquet"
            self.fs.move(f"{self.base}/{self.staged(key)}", target)
            kept.append(target)
        self.done = True
        self.cleanup(self.entry())
        return kept

    def close(self) -> None:
        """Finish the files; drop them unless published (a journaled publish owns its own).

        The drop happens even when finishing a file fails (a full disk).
        """
        try:
            self.writers.close()
        finally:
            if not self.done:
                self.cleanup(self.entry())
