"""A corrupt Bronze file in the lake: one line naming it, nothing published, nothing lost.

Damage is done to the real month file (cut in half, overwritten with random bytes, or
bytes flipped inside a file whose footer still reads); the readers are the real ones
(chDB's file() for Silver and Gold, pyarrow for Bronze checks run alone).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import clickhouse_connect
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onering_assets.errors import CorruptLakeFileError
from onering_assets.resources import LakeResource
from tests.conftest import MEDALLION_SELECTION, gold_rows, settings_for, silver_rows
from tests.test_faults import ok, onering

FEB = "lake/bronze/flights/month=2013-02/data.parquet"
REINGEST = "onering materialize --select 'key:\"bronze/flights\"' --partition 2013-02"


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def flip_inside(path: Path) -> None:
    """Flip bytes in the middle of the data; the footer (the file's tail) stays valid."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 4, len(data) // 2, 997):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def flip_silently(path: Path) -> None:
    """Flip one byte inside a page that still decodes: only the page checksum shows it."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 2):
        data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            pq.read_table(path)  # no checksum verification: is the damage silent?
        except (pa.ArrowException, OSError):
            data[i] ^= 0xFF
            continue
        return
    raise AssertionError(f"no byte of {path} decodes when flipped")


def small_lake(tmp_path: Path) -> tuple[LakeResource, Path]:
    lake = LakeResource(url=f"file://{tmp_path / 'lake'}")
    n = 20_000
    data = pa.table({"flight": [str(i) for i in range(n)], "origin": ["EWR", "JFK"] * (n // 2)})
    path = Path(lake.write("bronze", "flights", "2013-02", data))
    lake.write("bronze", "flights", "2013-01", data)
    return lake, path


@pytest.mark.parametrize("damage", [truncate, garbage])
def test_an_unreadable_footer_is_one_error_naming_the_file_and_the_fix(
    tmp_path: Path, damage
) -> None:
    lake, path = small_lake(tmp_path)
    damage(path)
    for read in (
        lambda: lake.clickhouse_source("bronze", "flights", ["2013-01", "2013-02"]),
        lambda: lake.read("bronze", "flights", "2013-02"),
    ):
        with pytest.raises(CorruptLakeFileError) as caught:
            read()
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"bronze.flights 2013-02: the lake file {path} is unreadable (")
        assert message.endswith(f"re-ingest it with `{REINGEST}`, then run again.")
    # Months that are fine, or not there at all, read as before.
    lake.clickhouse_source("bronze", "flights", ["2013-01", "2013-03"])
    assert lake.read("bronze", "flights", "2013-01").num_rows == 20_000


def test_damage_behind_a_valid_footer_is_named_from_the_engine_error(tmp_path: Path) -> None:
    lake, path = small_lake(tmp_path)
    flip_inside(path)
    lake.check_readable("bronze", "flights", ["2013-02"])  # the footer still reads
    source, params = lake.clickhouse_source("bronze", "flights", ["2013-02"])
    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'ch'}")
    try:
        with pytest.raises(CorruptLakeFileError) as caught, lake.reading():
            client.query(f"SELECT count(), sum(length(flight)) FROM {source}", parameters=params)
    finally:
        client.close()
    assert str(caught.value).startswith(f"bronze.flights 2013-02: the lake file {path} ")
    assert "\n" not in str(caught.value) and REINGEST in str(caught.value)
    # Other engine errors pass through unchanged.
    with pytest.raises(ZeroDivisionError), lake.reading():
        _ = 1 / 0


def test_a_corrupt_file_being_replaced_is_moved_to_quarantine_not_deleted(
    tmp_path: Path,
) -> None:
    lake, path = small_lake(tmp_path)
    garbage(path)
    republish_quarantines(tmp_path, lake, path.read_bytes())


def republish_quarantines(tmp_path: Path, lake, damaged: bytes) -> None:
    """Re-ingesting both months sets the damaged February aside whole, and only it."""
    good = pa.table({"flight": ["1"], "origin": ["EWR"]})
    lake.publish("bronze", "flights", "run-1", {"2013-01": good, "2013-02": good})
    kept = tmp_path / "lake/quarantine/bronze/flights/run-1/corrupt/month=2013-02/data.parquet"
    assert kept.read_bytes() == damaged
    assert lake.read("bronze", "flights", "2013-02").num_rows == 1
    # A readable file being replaced is not set aside.
    assert not (kept.parent.parent / "month=2013-01").exists()


@pytest.mark.parametrize("damage", [flip_inside, flip_silently])
def test_damage_behind_a_valid_footer_is_quarantined_on_reingest(tmp_path: Path, damage) -> None:
    """Pages that no longer decode, or decode to other values (the page checksum says so)."""
    lake, path = small_lake(tmp_path)
    damage(path)
    lake.check_readable("bronze", "flights", ["2013-02"])  # the footer still reads
    with pytest.raises(CorruptLakeFileError):
        lake.read("bronze", "flights", "2013-02")
    republish_quarantines(tmp_path, lake, path.read_bytes())
    assert lake.staging_paths() == []


def fails_naming(proc: subprocess.CompletedProcess[str], path: Path) -> None:
    """Exit 1; each failed step is one line naming the file and the fix; no traceback."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output and "DB::Exception" not in output, output
    named = [line for line in output.splitlines() if str(path) in line]
    assert named, output
    for line in named:
        assert line.lstrip().startswith("error ") and f"re-ingest it with `{REINGEST}`" in line, (
            line
        )


def published(state: Path) -> tuple[list[tuple], list[tuple]]:
    settings = settings_for(state, None)
    return (
        silver_rows(settings, "flights", "flight_date, carrier, flight, origin"),
        gold_rows(settings, "carrier_monthly_performance"),
    )


@pytest.mark.slow
@pytest.mark.parametrize("damage", [truncate, garbage])
def test_corrupt_month_fails_every_reader_in_one_line_and_reingest_converges(
    tmp_path: Path, make_source, damage
) -> None:
    from onering_assets.resources.postgres import stop_embedded

    state, source = tmp_path / "state", make_source()
    try:
        medallion = ("--select", MEDALLION_SELECTION, "--from", "2013-01", "--to", "2013-02")
        ok(onering(state, source, "materialize", *medallion))
        before = published(state)
        path = state / FEB
        damage(path)
        damaged = path.read_bytes()

        silver = ("--select", 'key:"silver/flights"', "--partition", "2013-02")
        fails_naming(onering(state, source, "materialize", *silver), path)
        # A retry cannot fix it until the month is re-ingested: Airflow must not retry.
        verdict = onering(state, source, "materialize", *silver, "--json")
        summary = json.loads(verdict.stdout.strip().splitlines()[-1])
        assert summary["success"] is False and summary["retryable"] is False
        assert "onering_assets.errors" not in summary["failures"][0]
        gold = ("--select", 'key:"gold/carrier_monthly_performance"', "--partition", "2013-02")
        fails_naming(onering(state, source, "materialize", *gold), path)
        fails_naming(onering(state, source, "check"), path)
        assert published(state) == before  # Silver and Gold keep their version

        ok(onering(state, source, *shlex.split(REINGEST)[1:]))
        quarantined = list((state / "lake/quarantine/bronze/flights").glob("*/corrupt/*/*"))
        assert [p.read_bytes() for p in quarantined] == [damaged]
        downstream = f'key:"silver/flights"+ and ({MEDALLION_SELECTION})'
        ok(onering(state, source, "materialize", "--select", downstream, "-p", "2013-02"))
        assert published(state) == before
        ok(onering(state, source, "check", "--select", MEDALLION_SELECTION))
    finally:
        stop_embedded(state / "postgres")
