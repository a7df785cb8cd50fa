"""Silver publication on real chDB: run-scoped staging, idempotent swaps, recovery, _row.

These call the same steps the asset runs (``SilverBuild``) on a tmp lake and chDB store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from onering_assets import journal
from onering_assets.bronze.ingest import split, stamp
from onering_assets.catalog import load_catalog
from onering_assets.errors import ChangelogError
from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.resources.locks import FileLocks
from onering_assets.silver import plan, recovery
from onering_assets.silver.steps import SilverBuild

AIRLINES = load_catalog().sql_table("silver", "airlines")
BRONZE_AIRLINES = load_catalog().table("bronze", "airlines")


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[LakeResource, ClickHouseResource]]:
    lake = LakeResource(url=(tmp_path / "lake").as_uri())
    ch = ClickHouseResource(dsn=f"chdb://{tmp_path / 'clickhouse'}")
    yield lake, ch
    ch.close()


def land(lake: LakeResource, rows: list[tuple[str, str]], run: str) -> None:
    data = pa.table({"carrier": [r[0] for r in rows], "name": [r[1] for r in rows]})
    landed = split(stamp(data, batch_id=run, source="test"), BRONZE_AIRLINES, None)  # type: ignore[arg-type]
    lake.publish("bronze", "airlines", run, {None: landed.by_partition[""]})


def build(lake: LakeResource, ch: ClickHouseResource, run: str) -> SilverBuild:
    b = SilverBuild(ch.get_client(), AIRLINES, lake, None, run, ch.locks())
    b.create()
    return b


def published(ch: ClickHouseResource, table: str = "airlines") -> list[tuple]:
    client = ch.get_client()
    sql = f"SELECT carrier, name, _batch_id, _row FROM silver.{table} ORDER BY carrier, _row"
    return [tuple(r) for r in client.query(sql).result_rows]


def test_the_row_landed_last_wins_within_one_ingestion(stores) -> None:
    """Every row of one batch shares _ingested_at; _row (position in the file) decides."""
    lake, ch = stores
    land(lake, [("AA", "First"), ("UA", "United"), ("AA", "Last"), ("AA", "Middle")], "r1")
    b = build(lake, ch, "r1")
    b.stage()
    b.publish()
    b.drop()
    assert published(ch) == [("AA", "Middle", "r1", 4), ("UA", "United", "r1", 2)]
    rejects = ch.get_client().query(
        "SELECT _row, _reject_reason FROM silver.airlines_rejects ORDER BY _row"
    )
    assert [tuple(r) for r in rejects.result_rows] == [(1, "duplicate key"), (3, "duplicate key")]


def test_two_runs_stage_apart_and_each_publishes_its_own_rows(stores) -> None:
    """With fixed staging names run B's stage would replace run A's unaudited rows."""
    lake, ch = stores
    land(lake, [("AA", "Version A")], "runa")
    a = build(lake, ch, "runa")
    a.stage()
    land(lake, [("AA", "Version B"), ("DL", "Delta")], "runb")
    b = build(lake, ch, "runb")
    b.stage()
    assert a.names.stage_name != b.names.stage_name
    a.publish()
    assert published(ch) == [("AA", "Version A", "runa", 1)]
    a.drop()
    assert recovery.staging_tables(ch.get_client()) == sorted(
        [b.names.rejects_stage_name, b.names.stage_name]
    )
    b.publish()
    b.drop()
    assert [r[:2] for r in published(ch)] == [("AA", "Version B"), ("DL", "Delta")]
    assert recovery.staging_tables(ch.get_client()) == []


def test_swaps_are_idempotent_so_a_publish_can_be_redone(stores) -> None:
    lake, ch = stores
    land(lake, [("AA", "American"), ("AA", "Dup")], "r1")
    b = build(lake, ch, "r1")
    b.stage()
    client = ch.get_client()
    for _ in range(3):
        for statement, settings in plan.publish_statements(AIRLINES, None, b.names):
            client.command(statement, settings=settings)
    b.drop()
    assert published(ch) == [("AA", "Dup", "r1", 2)]
    assert client.query("SELECT count() FROM silver.airlines_rejects").result_rows == [(1,)]


def test_a_journaled_publish_is_rolled_forward_when_the_store_is_opened(
    stores, tmp_path: Path
) -> None:
    """Crash after the table's swap, before the rejects': the next open finishes it."""
    lake, ch = stores
    land(lake, [("AA", "Old"), ("AA", "Old dup")], "old")
    first = build(lake, ch, "old")
    first.stage()
    first.publish()
    first.drop()
    land(lake, [("AA", "New")], "new")
    crashed = build(lake, ch, "new")
    crashed.stage()
    client = ch.get_client()
    entry = journal.Entry("new", "silver", "airlines", {"partitions": None})
    journal.ClickHouseJournal(client).write(entry)
    table_swap = plan.publish_statements(AIRLINES, None, crashed.names)[0]
    client.command(table_swap[0], settings=table_swap[1])
    crashed._held.close()  # the run dies: its stage lock is released, its staging stays
    # The publish window: the table is new, the rejects still old.
    assert published(ch) == [("AA", "New", "new", 1)]
    assert client.query("SELECT count() FROM silver.airlines_rejects").result_rows == [(1,)]
    ch.close()

    reopened = ClickHouseResource(dsn=ch.dsn).get_client()  # recovery runs on open
    try:
        assert reopened.query("SELECT count() FROM silver.airlines_rejects").result_rows == [(0,)]
        assert journal.ClickHouseJournal(reopened).pending() == []
        assert recovery.staging_tables(reopened) == []
    finally:
        reopened.close()


def test_orphans_are_dropped_but_a_live_runs_staging_is_kept(stores, tmp_path: Path) -> None:
    lake, ch = stores
    land(lake, [("AA", "American")], "r1")
    live = build(lake, ch, "live")
    live.stage()
    client = ch.get_client()
    for old in ("airlines__stage", "airlines_rejects__stage", "airlines__candidates"):
        client.command(f"CREATE TABLE silver.`{old}` AS silver.airlines")
    client.command("CREATE TABLE silver.`airlines__stage__deadrun` AS silver.airlines")
    locks = FileLocks(Path(ch.dsn.removeprefix("chdb://")).with_suffix(".locks"))
    dropped = recovery.drop_orphans(client, locks, journal.ClickHouseJournal(client))
    assert sorted(dropped) == [
        "airlines__candidates",
        "airlines__stage",
        "airlines__stage__deadrun",
        "airlines_rejects__stage",
    ]
    assert recovery.staging_tables(client) == sorted(
        [live.names.rejects_stage_name, live.names.stage_name]
    )
    live.drop()


def test_checks_alone_find_nothing_published_and_create_nothing(stores) -> None:
    lake, ch = stores
    b = SilverBuild(ch.get_client(), AIRLINES, lake, None, "r1", ch.locks())
    assert not b.published()
    tables = ch.get_client().query("SELECT count() FROM system.tables WHERE database = 'silver'")
    assert tables.result_rows == [(0,)]


@pytest.mark.slow
def test_silver_checks_alone_on_a_fresh_store_report_not_published_and_write_nothing(
    tmp_path: Path, make_source, instance
) -> None:
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import check_keys, execute
    from tests.conftest import run, settings_for, silver_query

    settings = settings_for(tmp_path / "state", make_source())
    bronze = {dg.AssetKey(["bronze", t]) for t in ("flights", "airlines")}
    assert run(settings, instance=instance, select=bronze, last="2013-01").success
    lake_files = sorted(p for p in settings.lake_dir.rglob("*") if p.is_file())
    defs = build_definitions(settings)
    keys = {dg.AssetKey(["silver", t]) for t in ("flights", "airlines")}
    summary = execute(
        defs,
        instance,
        assets=set(),
        checks=check_keys(defs, keys),
        first="2013-01",
        last="2013-01",
        progress=False,
    )
    assert summary.checks and not any(passed for _, _, passed, _ in summary.checks)
    assert all("has not been materialized yet" in d for _, _, _, d in summary.checks)
    assert silver_query(
        settings, "SELECT count() FROM system.tables WHERE database IN ('silver', 'onering')"
    ) == [(0,)]
    assert sorted(p for p in settings.lake_dir.rglob("*") if p.is_file()) == lake_files


HOLD_PUBLISH_LOCK = """
import sys, time
from onering_assets.resources.locks import PgLocks
with PgLocks(sys.argv[1]).hold("publish:silver.airlines", what="x"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_on_a_server_publication_waits_for_the_postgres_lock(stores, tmp_path: Path) -> None:
    """The server code path (PgLocks) on the real engine: another holder blocks publish."""
    import subprocess
    import sys

    from onering_assets.errors import StoreBusyError
    from onering_assets.resources import PostgresResource
    from onering_assets.resources.locks import PgLocks

    lake, ch = stores
    dsn = PostgresResource(embedded_dir=str(tmp_path / "pg")).conninfo()
    land(lake, [("AA", "American")], "r1")
    b = SilverBuild(ch.get_client(), AIRLINES, lake, None, "r1", PgLocks(dsn, timeout_s=0.5))
    b.create()
    b.stage()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_PUBLISH_LOCK, dsn], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError, match="locked by another run"):
            b.publish()
        assert published(ch) == []  # nothing published, not even journaled
        assert journal.ClickHouseJournal(ch.get_client()).pending() == []
    finally:
        holder.kill()
        holder.wait(timeout=30)
    b.locks = PgLocks(dsn, timeout_s=30)  # the server ends the killed session's locks
    b.publish()
    b.drop()
    assert published(ch) == [("AA", "American", "r1", 1)]
    assert recovery.staging_tables(ch.get_client()) == []


def test_a_publish_that_fails_half_way_keeps_its_staging_and_is_rolled_forward(stores) -> None:
    """An error (not a crash) after the journal: drop keeps the staging the entry names."""
    lake, ch = stores
    land(lake, [("AA", "Old"), ("AA", "Old dup")], "old")
    first = build(lake, ch, "old")
    first.stage()
    first.publish()
    first.drop()
    land(lake, [("AA", "New")], "new")
    failing = build(lake, ch, "new")
    failing.stage()
    client = ch.get_client()
    client.command("DROP TABLE silver.airlines_rejects")  # the rejects swap will fail
    with pytest.raises(Exception, match="airlines_rejects"):
        failing.publish()
    failing.drop()
    assert recovery.staging_tables(client) == sorted(
        [failing.names.rejects_stage_name, failing.names.stage_name]
    )
    assert [e.run for e in journal.ClickHouseJournal(client).pending()] == ["new"]

    # A table dropped outside the changelog is not silently re-created: the build refuses,
    # naming it, and the pending publish waits for it.
    with pytest.raises(ChangelogError, match=r"silver\.airlines_rejects does not exist"):
        build(lake, ch, "next")
    assert [e.run for e in journal.ClickHouseJournal(client).pending()] == ["new"]
    client.command(plan.create_statements(AIRLINES)[2])  # what its changeset creates
    build(lake, ch, "next")  # create() rolls the entry forward
    assert published(ch) == [("AA", "New", "new", 1)]
    assert client.query("SELECT count() FROM silver.airlines_rejects").result_rows == [(0,)]
    assert journal.ClickHouseJournal(client).pending() == []
    assert recovery.staging_tables(client) == []
