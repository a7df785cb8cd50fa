"""Bronze landed a piece at a time: the same months, quarantine and checks as one piece,
and a file refused part way or a failing check publishes nothing and leaves no staging."""

from __future__ import annotations

import dataclasses
import gzip
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onering_assets.bronze.landing import ingesting
from onering_assets.catalog import load_catalog
from onering_assets.checks import names
from onering_assets.errors import SourceError
from onering_assets.resources import LakeResource
from onering_assets.resources.source import SourceResource
from tests.conftest import run, settings_for

FLIGHTS = next(t for t in load_catalog().bronze if t.name == "flights")
KEY = dg.AssetKey(["bronze", "flights"])
MONTHS = ["2013-01", "2013-02"]
# Columns that differ between two ingestions of the same file.
PER_BATCH = ["_batch_id", "_ingested_at"]


def planted(flights: pd.DataFrame) -> str:
    """January and February with rows in no month and lines the reader sets aside."""
    rows = flights.copy()
    rows.loc[[7, 20_000, 40_000], "month"] = "13"
    lines = rows.to_csv(index=False).splitlines()
    for at in (3, 15_000, 30_000):
        lines.insert(at, '2013,1,1,"unbalanced')
    return "\n".join(lines) + "\n"


def published(lake: Path, month: str) -> pa.Table:
    return pq.read_table(lake / "bronze" / "flights" / f"month={month}" / "data.parquet")


def quarantined(lake: Path, label: str) -> pa.Table:
    (path,) = (lake / "quarantine" / "bronze" / "flights").glob(f"*/{label}.parquet")
    return pq.read_table(path)


def test_a_landing_in_many_pieces_publishes_what_one_piece_does(
    tmp_path: Path, make_source, flights_jan_feb: pd.DataFrame, instance: dg.DagsterInstance
) -> None:
    source = make_source(raw_flights=planted(flights_jan_feb))
    results = {}
    for label, chunk in (("one", 1 << 30), ("many", 64 << 10)):
        settings = dataclasses.replace(
            settings_for(tmp_path / label, source), bronze_chunk_bytes=chunk
        )
        summary = run(settings, instance=instance, select={KEY})
        assert summary.success, summary.failures  # set-aside lines only warn
        results[label] = (settings.lake_dir, summary)
    (one, one_run), (many, many_run) = results["one"], results["many"]
    for month in MONTHS:
        assert (
            published(many, month)
            .drop_columns(PER_BATCH)
            .equals(published(one, month).drop_columns(PER_BATCH))
        )
        assert published(many, month).num_rows > 10_000
    for label in ("unassigned", "malformed"):
        a, b = quarantined(one, label), quarantined(many, label)
        keep = [c for c in a.column_names if c not in PER_BATCH]
        assert b.select(keep).equals(a.select(keep))
    assert quarantined(many, "malformed")["line"].to_pylist() == [4, 15_001, 30_001]
    assert quarantined(many, "unassigned").num_rows == 3
    assert sorted(many_run.checks) == sorted(one_run.checks)
    verdicts = {check: passed for _, check, passed, _ in many_run.checks}
    assert verdicts[names.MALFORMED_LINES] is False
    assert verdicts[names.UNASSIGNED_ROWS] is False
    assert verdicts[names.NOT_EMPTY] is True


def _ingest(lake: LakeResource, source: SourceResource, batch: str) -> None:
    with ingesting(FLIGHTS, lake, batch, MONTHS, lambda _: None) as ingest:
        ingest.land(source.land_chunks("flights"))
        failures = [o for o in ingest.checks() if not o.passed]
        if failures:
            ingest.quarantine()
            return
        ingest.publish()


def test_a_file_refused_part_way_publishes_nothing_and_leaves_nothing_staged(
    tmp_path: Path, flights_jan_feb: pd.DataFrame
) -> None:
    lake = LakeResource(url=(tmp_path / "lake").as_uri())
    good = tmp_path / "good"
    good.mkdir()
    flights_jan_feb.to_csv(good / "flights.csv", index=False)
    _ingest(lake, SourceResource(path=str(good), chunk_bytes=1 << 16), "first")
    before = {
        m: (tmp_path / "lake" / "bronze/flights" / f"month={m}/data.parquet").read_bytes()
        for m in MONTHS
    }

    broken = tmp_path / "broken"
    broken.mkdir()
    rows = flights_jan_feb.copy()
    rows.loc[5, "month"] = "13"  # set aside as it passes, then taken back with the batch
    packed = gzip.compress(planted(rows).encode())
    (broken / "flights.csv.gz").write_bytes(packed[: len(packed) * 3 // 4])
    with pytest.raises(SourceError, match="cannot be read"):
        _ingest(lake, SourceResource(path=str(broken), chunk_bytes=1 << 16), "second")

    after = {
        m: (tmp_path / "lake" / "bronze/flights" / f"month={m}/data.parquet").read_bytes()
        for m in MONTHS
    }
    assert after == before
    assert lake.staging_paths() == []
    assert not list((tmp_path / "lake" / "quarantine").rglob("*.parquet"))


def test_a_blocking_failure_moves_every_staged_month_to_quarantine(
    tmp_path: Path, flights_jan_feb: pd.DataFrame
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    flights_jan_feb.drop(columns=["dep_delay"]).to_csv(source / "flights.csv", index=False)
    lake = LakeResource(url=(tmp_path / "lake").as_uri())
    _ingest(lake, SourceResource(path=str(source), chunk_bytes=1 << 16), "batch")

    assert not (tmp_path / "lake" / "bronze").exists()
    assert lake.staging_paths() == []
    kept = {
        p.name: pq.read_metadata(p).num_rows
        for p in (tmp_path / "lake" / "quarantine/bronze/flights/batch").glob("*.parquet")
    }
    expected = flights_jan_feb.groupby("month").size()
    assert kept == {"2013-01.parquet": expected["1"], "2013-02.parquet": expected["2"]}


def test_every_piece_shares_one_ingestion_time(
    tmp_path: Path, flights_jan_feb: pd.DataFrame
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    flights_jan_feb.to_csv(source / "flights.csv", index=False)
    lake = LakeResource(url=(tmp_path / "lake").as_uri())
    _ingest(lake, SourceResource(path=str(source), chunk_bytes=1 << 14), str(uuid.uuid4()))
    for month in MONTHS:
        table = published(tmp_path / "lake", month)
        assert (
            table["_ingested_at"].unique().to_pylist()
            == published(tmp_path / "lake", MONTHS[0])["_ingested_at"].unique().to_pylist()
        )
        rows = table["_row"].to_pylist()
        assert rows == sorted(rows) and len(set(rows)) == len(rows)


def test_a_full_disk_while_finishing_the_files_still_drops_the_staging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LakeResource(url=(tmp_path / "lake").as_uri())
    part = pa.table({"a": ["1", "2"]})

    def full(self: pq.ParquetWriter) -> None:
        raise OSError(28, "No space left on device")

    with (
        pytest.raises(OSError, match="No space left"),
        lake.staging("bronze", "flights", "run") as staging,
    ):
        staging.write("2013-01", part)
        staging.write("2013-02", part)
        monkeypatch.setattr(pq.ParquetWriter, "close", full)
        staging.publish()
    monkeypatch.undo()
    assert lake.staging_paths() == []
    assert not (tmp_path / "lake" / "bronze").exists()
