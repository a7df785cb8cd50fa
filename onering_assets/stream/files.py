"""Streamed Bronze files: ``<layer>/<table>/month=…/stream-<batch>.parquet`` in the lake.

They sit beside the batch path's ``data.parquet`` of the month. A batch re-ingest replaces
only ``data.parquet``; readers (Silver, the reconciliation) read every ``*.parquet`` of the
month (``LakeResource.clickhouse_source``).
"""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from onering_assets.journal import fsync_dir
from onering_assets.resources.lake import LakeResource
from onering_assets.resources.lake_files import reason, write_parquet


def month_folder(lake: LakeResource, table: str, month: str) -> tuple[pafs.FileSystem, str]:
    fs, base = lake._filesystem()
    return fs, f"{base}/bronze/{table}/month={month}"


def landed_identities(
    lake: LakeResource, table: str, months: set[str]
) -> dict[str, set[tuple[str, int]]]:
    """Per month, the ``(landed file, line)`` of every row already in Bronze.

    Streamed rows name their file in ``_source`` (``<file> via <topic>``); the batch path's
    rows are that file's lines too (``_source`` = the file), so replaying a month the batch
    path already landed lands nothing twice. A file that cannot be read is one error naming
    it (CorruptLakeFileError), never a silent skip.
    """
    fs, _ = lake._filesystem()
    found: dict[str, set[tuple[str, int]]] = {}
    for month in sorted(months):
        keys: set[tuple[str, int]] = set()
        for path in lake.month_files("bronze", table, month):
            try:
                rows = pq.read_table(path, columns=["_source", "_row"], filesystem=fs)
            except (pa.ArrowException, OSError) as err:
                raise lake.unreadable("bronze", table, month, reason(err), path) from None
            sources = rows["_source"].combine_chunks().dictionary_encode()
            files = [s.rsplit(" via ", 1)[0] for s in sources.dictionary.to_pylist()]
            keys.update(
                zip(
                    [files[i] for i in sources.indices.to_pylist()],
                    rows["_row"].to_pylist(),
                    strict=True,
                )
            )
        found[month] = keys
    return found


def write_stream_file(
    lake: LakeResource, table: str, month: str, batch: str, data: pa.Table
) -> str:
    """Write the month's file of one batch durably: temporary name, fsync, rename, fsync dir."""
    fs, folder = month_folder(lake, table, month)
    fs.create_dir(folder, recursive=True)
    final = f"{folder}/{batch}.parquet"
    tmp = f"{final}.tmp"
    write_parquet(data, tmp, fs)
    local = urlparse(lake.url).scheme == "file"
    if local:
        fsync_dir(tmp)  # (an fsync of the file: the same open-read-only-and-fsync)
    fs.move(tmp, final)
    if local:
        fsync_dir(folder)
    return final


def write_batch_record(lake: LakeResource, run_id: str, record: dict[str, object]) -> str:
    """One consumed batch's ledger entry, ``stream/flights_events/<run>.json``.

    What the batch received, landed, dropped and dead-lettered, and its files; the folder is
    what the catalog shows as the stream asset's container.
    """
    fs, base = lake._filesystem()
    folder = f"{base}/stream/flights_events"
    fs.create_dir(folder, recursive=True)
    path = f"{folder}/{run_id}.json"
    with fs.open_output_stream(path) as out:
        out.write(json.dumps(record, indent=1, sort_keys=True).encode())
    return path
