"""One Bronze ingestion, a piece of the landed file at a time, in bounded memory.

Each piece (``SourceResource.land_chunks``: about 64 MB of the decompressed file, cut at a
line end) is stamped, split by month and appended to that month's staged Parquet file, and
what the checks need is added up as it passes: rows per month, the landed columns, and the
rows set aside (counted, sampled, and written to the batch's quarantine as they come). So a
file of any size holds about three pieces in memory (one read ahead, one parsed, one being
written), not the file. Then the checks decide: publish
every staged month at once, or move them all to quarantine. The asset and the benchmark's
raw baseline both run this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from onering_assets.bronze.ingest import Landed, Sampled, Summary, outcomes, split, stamp
from onering_assets.catalog import BronzeTable
from onering_assets.checks import names
from onering_assets.checks.ge import run_suite
from onering_assets.checks.outcome import Outcome
from onering_assets.checks.specs import bronze_checks
from onering_assets.resources import LakeResource
from onering_assets.resources.lake_stage import Staging, Writers
from onering_assets.resources.source import Landing

Log = Callable[[str], None]


def wants_suite(table: BronzeTable) -> bool:
    """Whether the table's Great Expectations suite is one of its declared checks."""
    return bool(table.ge_suite) and any(d.name == names.GE_SUITE for d in bronze_checks(table))


def suite_outcome(table: BronzeTable, frames: list[pa.Table]) -> Outcome:
    """The table's GX suite over these rows (it reads them whole, as pandas)."""
    assert table.ge_suite
    rows = [t for t in frames if t.num_rows]
    frame = pa.concat_tables(rows).to_pandas() if rows else pa.table({}).to_pandas()
    return run_suite(table.ge_suite, frame)


@dataclass
class BronzeIngest:
    """A Bronze ingestion in progress: staged months, counts, and the rows set aside."""

    table: BronzeTable
    lake: LakeResource
    staging: Staging
    batch_id: str
    partitions: list[str] | None
    log: Log
    set_aside: Writers = field(init=False)
    columns: tuple[str, ...] | None = None
    unassigned: Sampled = field(default_factory=lambda: Sampled(0, []))
    malformed: Sampled = field(default_factory=lambda: Sampled(0, []))
    frames: list[pa.Table] = field(default_factory=list)  # kept only for a GX suite
    label: str = ""
    pieces: int = 0
    landed: int = 0

    def __post_init__(self) -> None:
        self.set_aside = Writers(self.staging.fs)

    def _land(self, pieces: Iterable[Landing]) -> None:
        when = datetime.now(UTC)  # one ingestion: every row shares _ingested_at
        keep_for_suite = wants_suite(self.table)
        # Parquet encoding of one piece overlaps parsing the next (both drop the GIL); one
        # piece at most waits to be written, so memory stays a few pieces.
        with ThreadPoolExecutor(1, thread_name_prefix="onering-bronze-write") as writer:
            pending: Future[None] | None = None
            for piece in pieces:
                self.label = piece.label
                stamped = stamp(
                    piece.table,
                    batch_id=self.batch_id,
                    source=piece.label,
                    ingested_at=when,
                    lines=piece.lines,
                )
                landed = split(stamped, self.table, self.partitions)
                self.columns = self.columns or landed.columns
                self.unassigned = self.unassigned.add(landed.unassigned, "_partition")
                self.malformed = self.malformed.add(piece.malformed, "raw")
                if keep_for_suite:
                    self.frames.extend(landed.by_partition.values())
                if pending is not None:
                    pending.result()
                pending = writer.submit(self._stage, landed, piece.malformed)
                self.pieces += 1
                self.landed += landed.rows
                if self.pieces > 1:
                    self.log(f"bronze.{self.table.name}: {self.landed:,} rows landed so far")
            if pending is not None:
                pending.result()

    def _stage(self, landed: Landed, malformed: pa.Table) -> None:
        """Append a piece's months to their staged files, its set-aside rows to quarantine."""
        for key, part in landed.by_partition.items():
            self.staging.write(key or None, part)
        self._quarantine("unassigned", landed.unassigned)
        self._quarantine("malformed", malformed)

    def _quarantine(self, label: str, data: pa.Table) -> None:
        if data.num_rows:
            self.set_aside.write(
                self.lake.quarantine_path("bronze", self.table.name, self.batch_id, label), data
            )

    def land(self, pieces: Iterable[Landing]) -> None:
        """Stage every piece, counting and setting aside as they pass (nothing published)."""
        try:
            self._land(pieces)
        except BaseException:
            # A file refused part way (a truncated archive) lands nothing: its staged months
            # go with the staging, and the lines it set aside so far go too.
            self.set_aside.discard()
            raise
        self.set_aside.close()
        for label, seen in (("malformed", self.malformed), ("unassigned", self.unassigned)):
            if seen.rows:
                path = self.lake.quarantine_path("bronze", self.table.name, self.batch_id, label)
                self.log(f"quarantined {seen.rows} {label} line(s): {path}")
        # Arrow keeps freed buffers for reuse; give them back before the next asset runs.
        pa.default_memory_pool().release_unused()

    @property
    def rows(self) -> int:
        return sum(self.staging.rows().values())

    def counts(self) -> dict[str, int]:
        """Rows staged per partition key (``""`` for an unpartitioned table)."""
        return {k or "": n for k, n in self.staging.rows().items()}

    def checks(self) -> list[Outcome]:
        """Bronze's checks over what was staged, without the GX suite."""
        summary = Summary(
            self.counts(),
            self.columns or (),
            self.unassigned if self.table.partitioned else None,
            self.malformed,
        )
        return outcomes(self.table, summary)

    def suite(self) -> list[Outcome]:
        """The GX suite over the staged rows, when the table declares one (else nothing)."""
        if not wants_suite(self.table):
            return []
        result = suite_outcome(self.table, self.frames)
        self.frames.clear()
        return [result]

    def quarantine(self) -> None:
        """Keep the whole batch under ``quarantine/bronze/<table>/<batch>/`` instead."""
        self.staging.quarantine(self.batch_id)

    def publish(self) -> dict[str, int]:
        """Publish every staged month at once; rows per partition key."""
        counts = self.counts()
        self.staging.publish()
        return counts


@contextlib.contextmanager
def ingesting(
    table: BronzeTable,
    lake: LakeResource,
    batch_id: str,
    partitions: list[str] | None,
    log: Log,
) -> Iterator[BronzeIngest]:
    """A Bronze ingestion under the run's stage lock; unpublished staging is dropped after."""
    with lake.staging("bronze", table.name, batch_id) as staging:
        yield BronzeIngest(table, lake, staging, batch_id, partitions, log)
