"""The local profile's event log (``onering_assets/eventlog.py``): Dagster's SQLite files,
written through engines kept open.

What each test proves:
- a local instance uses it, in Dagster's default folder, and a stock
  ``SqliteEventLogStorage`` on that folder reads every event a run wrote (same files);
- it keeps one open engine per shard, reuses it, and never more than a few run shards;
- a forked process writes through its own connections while the parent keeps writing;
- a batch (the planned events Dagster sends as one, ``DAGSTER_EVENT_BATCH_SIZE``) is written
  event by event, fsynced once per shard before it returns, and commits after it are
  fsynced on their own again (``synchronous=FULL``);
- ``wipe`` closes the engines before deleting the run files, and writing works after it;
- the UI's live log stream (``watch_event_logs``) gets every event of a run executing in
  another process while it runs (commits stay in the ``-wal`` file with connections open).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)

from onering_assets.eventlog import KEPT_RUN_SHARDS, PooledSqliteEventLogStorage
from onering_assets.runner import execute, instance_for
from onering_assets.settings import Settings


@dg.asset
def answer() -> int:
    return 42


DEFS = dg.Definitions(assets=[answer])


def engines(instance: dg.DagsterInstance) -> dict:
    storage = instance.event_log_storage
    assert isinstance(storage, PooledSqliteEventLogStorage)
    return storage._engines


def run_once(instance: dg.DagsterInstance) -> str:
    summary = execute(DEFS, instance, assets={dg.AssetKey("answer")}, progress=False)
    assert summary.success, summary.failures
    return summary.run_id


def test_a_local_instance_writes_dagsters_files_through_open_engines(tmp_path: Path) -> None:
    settings = Settings(profile="local", state_dir=tmp_path / "state")
    with instance_for(settings) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        runs = [run_once(instance) for _ in range(KEPT_RUN_SHARDS + 2)]
        # The index and the last few run shards stay open; older run shards were closed.
        assert set(storage._engines) == {INDEX_SHARD_NAME, *runs[-KEPT_RUN_SHARDS:]}
        index = storage._engines[INDEX_SHARD_NAME]
        run_once(instance)
        assert storage._engines[INDEX_SHARD_NAME] is index  # reused, not rebuilt
        written = {r: len(instance.all_logs(r)) for r in runs}
    folder = settings.dagster_home / "history" / "runs"
    assert storage._base_dir == str(folder.resolve())
    stock = SqliteEventLogStorage(str(folder))
    assert {r: len(stock.get_logs_for_run(r)) for r in runs} == written
    assert all(count > 5 for count in written.values())
    records = stock.fetch_materializations(dg.AssetKey("answer"), limit=100).records
    assert len(records) == len(runs) + 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_writes_through_its_own_connections(tmp_path: Path) -> None:
    settings = Settings(profile="local", state_dir=tmp_path / "state")
    with instance_for(settings) as instance:
        first = run_once(instance)  # the parent now holds open connections
        parent_engines = dict(engines(instance))
        pid = os.fork()
        if pid == 0:  # the child: a run of its own, then exit without cleanup
            code = 1
            try:
                run_once(instance)
                mine = engines(instance)
                code = (
                    0
                    if all(mine[s] is not e for s, e in parent_engines.items() if s in mine)
                    else 3
                )
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        second = run_once(instance)  # the parent's connections still work
        assert engines(instance)[INDEX_SHARD_NAME] is parent_engines[INDEX_SHARD_NAME]
        records = instance.fetch_materializations(dg.AssetKey("answer"), limit=10).records
        assert len(records) == 3
        assert {first, second} <= {r.run_id for r in records}


def test_wipe_closes_the_engines_and_writing_goes_on(tmp_path: Path) -> None:
    settings = Settings(profile="local", state_dir=tmp_path / "state")
    with instance_for(settings) as instance:
        run_once(instance)
        storage = instance.event_log_storage
        storage.wipe()
        assert not list((settings.dagster_home / "history" / "runs").glob("[!i]*.db"))
        run_id = run_once(instance)
        assert len(instance.all_logs(run_id)) > 5
        assert len(instance.fetch_materializations(dg.AssetKey("answer"), limit=10).records) == 1


MONTHS = dg.MonthlyPartitionsDefinition(start_date="2013-01-01", end_offset=0)


@dg.asset(partitions_def=MONTHS, check_specs=[dg.AssetCheckSpec("positive", asset="monthly")])
def monthly():
    yield dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


def test_a_batch_is_fsynced_once_per_shard_and_later_commits_each_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onering_assets.eventlog as eventlog

    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "1000"  # set by importing onering_assets
    batches: list[int] = []
    synced: list[str] = []
    real_batch, real_fsync = PooledSqliteEventLogStorage.store_event_batch, os.fsync

    def spy_batch(self, events) -> None:
        batches.append(len(events))
        real_batch(self, events)

    def spy_fsync(fd: int) -> None:
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event_batch", spy_batch)
    monkeypatch.setattr(eventlog.os, "fsync", spy_fsync)
    settings = Settings(profile="local", state_dir=tmp_path / "state")
    with instance_for(settings) as instance:
        result = dg.materialize([monthly], instance=instance, partition_key="2013-02-01")
        assert result.success
        assert batches and batches[0] == 2  # the planned materialization and check, as one
        assert set(synced) == {"index.db-wal", f"{result.run_id}.db-wal"}
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        with storage._connect(INDEX_SHARD_NAME) as conn:  # any commit outside a batch
            mode = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        assert mode == 2  # FULL: fsynced at its own commit
        written = len(instance.all_logs(result.run_id))
    folder = settings.dagster_home / "history" / "runs"
    stock = SqliteEventLogStorage(str(folder))  # a stock Dagster reads the batch back
    logs = stock.get_logs_for_run(result.run_id)
    assert len(logs) == written
    kinds = [e.dagster_event.event_type_value for e in logs if e.dagster_event]
    assert kinds.count("ASSET_MATERIALIZATION_PLANNED") == 1
    assert kinds.count("ASSET_CHECK_EVALUATION_PLANNED") == 1


def test_an_error_mid_batch_stores_every_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster's fallback re-stores a whole batch one by one when the batch raises."""
    real = PooledSqliteEventLogStorage.store_event
    calls = {"n": 0}

    def flaky(self, event) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the batch's second event
            raise RuntimeError("database is locked")
        real(self, event)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event", flaky)
    settings = Settings(profile="local", state_dir=tmp_path / "state")
    with instance_for(settings) as instance:
        result = dg.materialize([monthly], instance=instance, partition_key="2013-03-01")
        assert result.success
        logs = instance.all_logs(result.run_id)
    kinds = [e.dagster_event.event_type_value for e in logs if e.dagster_event]
    assert kinds.count("ASSET_MATERIALIZATION_PLANNED") == 1
    assert kinds.count("ASSET_CHECK_EVALUATION_PLANNED") == 1


WRITER = """
import sys, time, dagster as dg

@dg.asset
def a():
    time.sleep(0.3)
    return 1

@dg.asset
def b(a):
    time.sleep(0.3)
    return 2

instance = dg.DagsterInstance.from_config(sys.argv[1])
job = dg.Definitions(assets=[a, b], jobs=[dg.define_asset_job("j")]).get_job_def("j")
assert job.execute_in_process(instance=instance, run_id=sys.argv[2]).success
print(len(instance.all_logs(sys.argv[2])), flush=True)
time.sleep(30)  # alive, connections open, until the test has looked
"""


def test_the_live_log_stream_sees_a_run_in_another_process(tmp_path: Path) -> None:
    settings = Settings(profile="local", state_dir=tmp_path / "state")
    home = str(settings.dagster_home)
    with instance_for(settings) as reader:  # the webserver's side
        run_id = str(uuid.uuid4())
        seen: list[str] = []
        reader.watch_event_logs(run_id, None, lambda entry, _cursor: seen.append(entry.message))
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, home, run_id],
            env={**os.environ, "DAGSTER_HOME": home},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout is not None
            stored = int(writer.stdout.readline())
            deadline = time.monotonic() + 20
            while len(seen) < stored and time.monotonic() < deadline:
                time.sleep(0.1)
            # Every event reached the watcher while the writer still held its connections.
            assert writer.poll() is None
            assert len(seen) == stored > 10
        finally:
            writer.kill()
            writer.wait()
