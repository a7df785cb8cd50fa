"""The lake: Parquet files under a local folder or an S3 bucket, one pyarrow code path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from onering_assets import journal
from onering_assets.errors import ConfigError, CorruptLakeFileError
from onering_assets.resources.lake_files import (
    DATA_FILE,
    ENGINE_FILE,
    LAKE_FILE,
    MONTH_FILES,
    data_error,
    footer_error,
    footer_rows,
    parquet_files,
    read_parquet,
    reason,
    table_function,
    write_parquet,
)
from onering_assets.resources.lake_stage import STAGING, Staging, apply_moves, drop_staged
from onering_assets.resources.locks import FileLocks, Locks, PgLocks


def stage_lock(layer: str, table: str, run: str) -> str:
    """The lock a run holds while its staging of a table exists (a live owner)."""
    return f"stage:{layer}.{table}.{run}"


class LakeResource(dg.ConfigurableResource):
    """Where Bronze lives: ``file:///abs/dir`` locally, ``s3://bucket/prefix`` on MinIO/S3.

    One file per partition (``<layer>/<table>/month=2013-01/data.parquet``), and beside it in
    Bronze one ``stream-<batch>.parquet`` per streamed batch (onering_assets/stream/; readers
    read every ``*.parquet`` of a month, a re-ingest replaces only ``data.parquet``). A run writes
    every file under ``_staging/<run>/`` first, journals the moves, then moves them into
    place (``publish``), so a crash is finished by ``recover`` and no partition is half
    written. ``lock_dsn`` (a Postgres DSN) serializes publication on S3; a local lake uses
    lock files under ``_locks/``.
    """

    url: str
    s3_endpoint_url: str | None = None
    # Where ClickHouse reaches the same bucket (e.g. http://minio:9000 inside compose).
    clickhouse_s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    lock_dsn: str | None = None
    lock_timeout_s: float = 120.0

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            return pafs.LocalFileSystem(), parsed.path.rstrip("/")
        if parsed.scheme == "s3":
            endpoint = urlparse(self.s3_endpoint_url) if self.s3_endpoint_url else None
            fs = pafs.S3FileSystem(
                access_key=self.aws_access_key_id,
                secret_key=self.aws_secret_access_key,
                endpoint_override=endpoint.netloc if endpoint else None,
                scheme=endpoint.scheme if endpoint else "https",
                allow_bucket_creation=True,
            )
            return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")
        raise ConfigError(f"Lake url {self.url!r} must start with file:// or s3://.")

    @staticmethod
    def relative_path(layer: str, table: str, partition: str | None) -> str:
        folder = f"{layer}/{table}" + (f"/month={partition}" if partition else "")
        return f"{folder}/{DATA_FILE}"

    def uri(self, layer: str, table: str, partition: str | None = None) -> str:
        """The storage address of one partition (or the whole table folder)."""
        base = self.url.rstrip("/")
        if partition is None:
            return f"{base}/{layer}/{table}"
        return f"{base}/{self.relative_path(layer, table, partition)}"

    def write(self, layer: str, table: str, partition: str | None, data: pa.Table) -> str:
        """Atomically replace one partition (or the whole unpartitioned table)."""
        fs, base = self._filesystem()
        final = f"{base}/{self.relative_path(layer, table, partition)}"
        fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        tmp = f"{final}.tmp"
        write_parquet(data, tmp, fs)
        fs.move(tmp, final)
        return final

    def locks(self) -> Locks:
        """Publication and run-liveness locks: Postgres when ``lock_dsn`` is set, else files."""
        if self.lock_dsn:
            return PgLocks(self.lock_dsn, self.lock_timeout_s)
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            return FileLocks(Path(parsed.path) / "_locks", self.lock_timeout_s)
        raise ConfigError(
            f"The lake {self.url} can be written by several hosts: set the lake's lock_dsn "
            "(a Postgres DSN; ONERING_POSTGRES_DSN in compose) so publications are serialized."
        )

    @contextlib.contextmanager
    def staging(self, layer: str, table: str, run_id: str) -> Iterator[Staging]:
        """The run's staged files of a table, held under its stage lock while they exist.

        Write partitions a piece at a time (``Staging.write``), then ``publish`` them as one
        crash-consistent publication or ``quarantine`` them; whatever is neither is deleted
        when the block ends.
        """
        fs, base = self._filesystem()
        run = journal.run_token(run_id)
        locks = self.locks()
        try:
            with locks.hold(
                stage_lock(layer, table, run), what=f"Staging of {layer}.{table} by run {run}"
            ):
                staging = Staging(
                    fs,
                    base,
                    layer,
                    table,
                    run_id,
                    self.relative_path,
                    lambda entry, keys: self._publish_entry(fs, base, locks, entry, keys, run_id),
                    self._cleanup,
                )
                try:
                    yield staging
                finally:
                    staging.close()
        finally:
            locks.close()

    def publish(
        self, layer: str, table: str, run_id: str, parts: dict[str | None, pa.Table]
    ) -> list[str]:
        """Replace several partitions as one crash-consistent publication; return their paths.

        Every file is written under ``_staging/<run>/`` first; then, holding the table's
        publication lock, any earlier crashed publish of the table is finished, the moves are
        journaled and done. After a crash, ``recover`` finishes them: each partition ends as
        this run's version, never half of it.
        """
        with self.staging(layer, table, run_id) as staging:
            for key, data in parts.items():
                staging.write(key, data)
            return staging.publish()

    def _publish_entry(
        self,
        fs: pafs.FileSystem,
        base: str,
        locks: Locks,
        entry: journal.Entry,
        keys: list[str | None],
        run_id: str,
    ) -> None:
        """Journal and do the moves of a staged publication under the publication lock."""
        layer, table = entry.layer, entry.table
        jr = journal.LakeJournal(fs, base)
        try:
            with locks.hold(f"publish:{layer}.{table}", what=f"Publishing {layer}.{table}"):
                journal.recover(jr, self._apply, self._cleanup, layer=layer, table=table)
                # A corrupt file being replaced is kept, not overwritten.
                self.set_aside_unreadable(layer, table, keys, run_id)
                journal.publish(jr, entry, self._apply, self._cleanup)
        except BaseException:
            # Journaled staging is rolled forward later; anything else is dropped now.
            if entry.key not in {e.key for e in jr.pending(layer, table)}:
                self._cleanup(entry)
            raise

    def _apply(self, entry: journal.Entry) -> None:
        apply_moves(*self._filesystem(), entry)

    def _cleanup(self, entry: journal.Entry) -> None:
        drop_staged(*self._filesystem(), entry)

    def recover(self) -> list[journal.Entry]:
        """Finish crashed publications, then delete staging no live run or pending entry owns.

        Costs two listings when there is nothing to do, and then creates nothing (checks alone
        write nothing to the lake).
        """
        fs, base = self._filesystem()
        jr = journal.LakeJournal(fs, base)
        pending = jr.pending()
        staged = self._staged(fs, base)
        if not pending and not staged:
            return []
        locks = self.locks()
        finished: list[journal.Entry] = []
        try:
            for layer, table in sorted({(e.layer, e.table) for e in pending}):
                with locks.hold(f"publish:{layer}.{table}", what=f"Publishing {layer}.{table}"):
                    finished += journal.recover(
                        jr, self._apply, self._cleanup, layer=layer, table=table
                    )
            owned = {(e.run, e.layer, e.table) for e in jr.pending()}
            for run, layer, table in self._staged(fs, base):
                if (run, layer, table) not in owned and not locks.is_held(
                    stage_lock(layer, table, run)
                ):
                    fs.delete_dir(f"{base}/{STAGING}/{run}/{layer}/{table}")
        finally:
            locks.close()
        return finished

    @staticmethod
    def _staged(fs: pafs.FileSystem, base: str) -> list[tuple[str, str, str]]:
        """(run, layer, table) of every staging folder."""
        selector = pafs.FileSelector(f"{base}/{STAGING}", allow_not_found=True, recursive=True)
        found = set()
        prefix = f"{base}/{STAGING}/"
        for info in fs.get_file_info(selector):
            parts = info.path.removeprefix(prefix).split("/")
            if len(parts) >= 3 and info.type == pafs.FileType.Directory:
                found.add((parts[0], parts[1], parts[2]))
        return sorted(found)

    def staging_paths(self) -> list[str]:
        """Every file under ``_staging/`` (tests assert none is left behind)."""
        fs, base = self._filesystem()
        selector = pafs.FileSelector(f"{base}/{STAGING}", allow_not_found=True, recursive=True)
        return [i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.recover()

    def quarantine(self, layer: str, table: str, batch_id: str, label: str, data: pa.Table) -> str:
        """Keep rejected input whole under ``quarantine/`` so nothing is lost."""
        fs, _ = self._filesystem()
        path = self.quarantine_path(layer, table, batch_id, label)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        write_parquet(data, path, fs)
        return path

    def quarantine_path(self, layer: str, table: str, batch_id: str, label: str) -> str:
        """Where ``quarantine`` keeps a batch's rows under ``label``."""
        return f"{self._filesystem()[1]}/quarantine/{layer}/{table}/{batch_id}/{label}.parquet"

    def read_quarantined(
        self, layer: str, table: str, batch_ids: list[str], label: str
    ) -> pa.Table:
        """What ``quarantine`` kept under ``label`` for these batches (no rows if none)."""
        fs, base = self._filesystem()
        paths = [f"{base}/quarantine/{layer}/{table}/{b}/{label}.parquet" for b in batch_ids]
        found = [p for p in paths if fs.get_file_info(p).type == pafs.FileType.File]
        tables = [pq.read_table(p, filesystem=fs) for p in found]
        return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})

    def read(self, layer: str, table: str, partition: str | None = None) -> pa.Table:
        """One published partition; a file that cannot be read raises CorruptLakeFileError."""
        fs, base = self._filesystem()
        path = f"{base}/{self.relative_path(layer, table, partition)}"
        try:
            return read_parquet(path, fs)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as err:
            raise self.unreadable(layer, table, partition, reason(err)) from None

    def unreadable(
        self, layer: str, table: str, partition: str | None, reason: str, path: str = ""
    ) -> CorruptLakeFileError:
        """The one-line error for a lake file that cannot be read, with the command to fix it."""
        fs, base = self._filesystem()
        path = path or f"{base}/{self.relative_path(layer, table, partition)}"
        shown = path if isinstance(fs, pafs.LocalFileSystem) else f"s3://{path}"
        month = f" {partition}" if partition else ""
        if path.rsplit("/", 1)[-1].startswith("stream-"):  # a streamed batch's file
            return CorruptLakeFileError(
                f"{layer}.{table}{month}: the streamed file {shown} is unreadable ({reason}); "
                f"move it out of the lake, replay the month (`onering stream replay --month "
                f"{partition}`) and land it again, then run again."
            )
        again = f"onering materialize --select 'key:\"{layer}/{table}\"'" + (
            f" --partition {partition}" if partition else ""
        )
        return CorruptLakeFileError(
            f"{layer}.{table}{month}: the lake file {shown} is unreadable ({reason}); "
            f"re-ingest it with `{again}`, then run again."
        )

    def check_readable(self, layer: str, table: str, partitions: list[str] | None) -> None:
        """Read the Parquet footer of each file about to be read (missing files are skipped).

        A truncated or overwritten file has no valid footer; reading only the footer costs
        well under a millisecond a file, so the engine is never handed a corrupt file.
        """
        for part in partitions or [None]:
            for path in self.month_files(layer, table, part):
                why = footer_error(self._filesystem()[0], path)
                if why:
                    raise self.unreadable(layer, table, part, why, path)

    def month_files(self, layer: str, table: str, partition: str | None) -> list[str]:
        """Every file a reader of the partition reads: ``data.parquet`` and streamed batches."""
        fs, base = self._filesystem()
        if partition is None:
            return [f"{base}/{self.relative_path(layer, table, None)}"]
        return parquet_files(fs, f"{base}/{layer}/{table}/month={partition}")

    def rows(self, layer: str, table: str, partition: str | None) -> int:
        """Rows in every file of the partition, from their Parquet footers (0 if none)."""
        fs = self._filesystem()[0]
        return sum(footer_rows(fs, p) for p in self.month_files(layer, table, partition))

    def has_rows_for(self, layer: str, table: str, partition: str) -> bool:
        """Whether the month has any file: the batch path's or a streamed batch's."""
        return bool(self.month_files(layer, table, partition))

    def set_aside_unreadable(
        self, layer: str, table: str, partitions: list[str | None], batch_id: str
    ) -> list[str]:
        """Move each published file of these partitions that cannot be read whole to quarantine.

        A re-ingest calls this before replacing the partitions, so a corrupt file is kept
        (``quarantine/<layer>/<table>/<batch>/corrupt/month=…/data.parquet``), never
        overwritten; ``onering gc`` ages it out with the batch's other quarantine. Every page
        is read (``data_error``), so damage behind a valid footer is kept too, not only a
        truncated or overwritten file.
        """
        fs, base = self._filesystem()
        moved = []
        for part in partitions:  # data.parquet only: a streamed file is no re-ingest's to move
            rel = self.relative_path(layer, table, part)
            if not data_error(fs, f"{base}/{rel}"):
                continue
            kept = f"{base}/quarantine/{layer}/{table}/{batch_id}/corrupt/{rel.split('/', 2)[2]}"
            fs.create_dir(kept.rsplit("/", 1)[0], recursive=True)
            fs.move(f"{base}/{rel}", kept)
            moved.append(kept)
        return moved

    def engine_error(self, err: BaseException) -> CorruptLakeFileError | None:
        """A ClickHouse failure to read a lake file, as CorruptLakeFileError (else None).

        Catches what the footer check cannot see: damage inside a file with a valid footer.
        """
        found = ENGINE_FILE.search(str(err))
        named = found.group(1).strip() if found else ""
        where = LAKE_FILE.search(named) if named else None
        if where is None:
            return None
        layer, table, partition = where.groups()
        return self.unreadable(layer, table, partition, reason(err), named)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Turn the engine's failure to read a lake file into one CorruptLakeFileError."""
        try:
            yield
        except CorruptLakeFileError:
            raise
        except Exception as err:
            corrupt = self.engine_error(err)
            if corrupt is None:
                raise
            raise corrupt from None

    def exists(self, layer: str, table: str, partition: str | None = None) -> bool:
        fs, base = self._filesystem()
        path = f"{base}/{self.relative_path(layer, table, partition)}"
        return fs.get_file_info(path).type == pafs.FileType.File

    def clickhouse_source(
        self, layer: str, table: str, partitions: list[str] | None, structure: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """A ClickHouse table function reading the given partitions, plus its parameters.

        With ``structure`` (``"col Type, …"``) columns are read by name and a column missing
        from a file reads as its type's default. The files' footers are checked first (see
        ``check_readable``), so a corrupt file is one error naming it, not the engine's.
        """
        self.check_readable(layer, table, partitions)
        if partitions:
            glob = ",".join(partitions)
            month = "{" + glob + "}" if len(partitions) > 1 else glob
            rel = f"{layer}/{table}/month={month}/{MONTH_FILES}"
        else:
            rel = self.relative_path(layer, table, None)
        return table_function(
            self.url,
            rel,
            structure,
            self.clickhouse_s3_endpoint_url or self.s3_endpoint_url,
            self.aws_access_key_id,
            self.aws_secret_access_key,
        )
