"""`onering reset` refuses while something live uses the state folder: real processes, stores.

Each live user is a real process on a tmp state folder: a real `onering materialize` (frozen
with SIGSTOP before its first lock, then while it holds the chDB store), a child holding the
chDB store through ClickHouseResource as a run does, a child that started the embedded
Postgres, and a process named by the local Airflow's pid file. Reset then exits 2 with one
line and deletes nothing; once the user is gone it deletes the folder.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from onering_assets.resources.embedded_pg import postmaster_pid
from onering_assets.resources.locks import FileLocks
from onering_assets.settings import PROJECT_ROOT
from tests.test_faults import cli_env, ok, onering

pytestmark = pytest.mark.slow
RUN_ARGS = ("--select", '+key:"silver/flights"', "--partition", "2013-01")

HOLD_CHDB = textwrap.dedent("""
    import sys
    from onering_assets.resources import ClickHouseResource

    with ClickHouseResource(dsn=sys.argv[1]).session():
        print("held", flush=True)
        sys.stdin.read()
""")
# Starts the embedded Postgres as a run does, then waits; "kill" on stdin kills this
# process (its pid stays in the wheel's list, the server keeps running), EOF ends it.
USE_POSTGRES = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from onering_assets.resources import embedded_pg

    embedded_pg.start(Path(sys.argv[1]))
    print("started", flush=True)
    if sys.stdin.readline().strip() == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
""")


def child(state: Path, code: str, *args: str) -> subprocess.Popen[str]:
    """A Python process on ``state`` running ``code``; returns once it printed its first line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=cli_env(state, None),
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip(), f"child exited {proc.wait()}"
    return proc


def refused(state: Path) -> str:
    """Run `onering reset --yes`, assert it refused in one line; return that line."""
    proc = onering(state, None, "reset", "--yes")
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert output.startswith("error: "), output
    assert state.is_dir()
    return output


def deleted(state: Path) -> None:
    proc = ok(onering(state, None, "reset", "--yes"))
    assert f"deleted {state}" in proc.stdout
    assert not state.exists()
    assert not list(state.parent.glob(f".{state.name}.deleting-*"))


def lake_files(state: Path) -> dict[str, str]:
    lake = state / "lake"
    return {
        str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lake.rglob("*"))
        if p.is_file()
    }


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    proc.wait()


def test_reset_refuses_while_a_process_holds_the_clickhouse_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ok(onering(state, None, "materialize", "--select", 'key:"bronze/airlines"'))
    before = lake_files(state)
    assert before
    holder = child(state, HOLD_CHDB, f"chdb://{state / 'clickhouse'}")
    try:
        line = refused(state)
        assert (
            f"the embedded ClickHouse store in {state / 'clickhouse'} is in use by pid "
            f"{holder.pid} (a running materialization?)"
        ) in line
        assert lake_files(state) == before
        assert {p.name for p in state.iterdir()} >= {"clickhouse", "dagster", "lake"}
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    finally:
        stop(holder)
    deleted(state)


def test_reset_refuses_a_real_run_before_and_while_it_holds_a_store(
    tmp_path: Path, make_source
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with (tmp_path / "run.log").open("w") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "onering_assets.cli", "materialize", *RUN_ARGS],
            env=cli_env(state, make_source()),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # Frozen before its first lock: only the process itself says the folder is live.
        os.kill(run.pid, signal.SIGSTOP)
        line = refused(state)
        assert f"the state folder {state} is in use by pid {run.pid} (python -m " in line
        os.kill(run.pid, signal.SIGCONT)
        # Frozen while it holds the embedded ClickHouse store (its Silver step).
        store, deadline = FileLocks(state), time.monotonic() + 300
        while True:
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "the run never took the ClickHouse store"
            if store.is_held("clickhouse"):
                os.kill(run.pid, signal.SIGSTOP)
                if store.is_held("clickhouse"):
                    break
                os.kill(run.pid, signal.SIGCONT)
            time.sleep(0.05)
        before = lake_files(state)
        line = refused(state)
        assert f"ClickHouse store in {state / 'clickhouse'} is in use by pid {run.pid}" in line
        assert "more in use); stop it first" in line  # the process itself, at least
        assert lake_files(state) == before
        os.kill(run.pid, signal.SIGCONT)
        assert run.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()
    finally:
        stop(run)
    assert "0 failed" in (tmp_path / "run.log").read_text()
    deleted(state)


def test_reset_refuses_a_used_postgres_and_stops_one_left_running(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data_dir = state / "postgres"
    user = child(state, USE_POSTGRES, str(data_dir))
    try:
        server = postmaster_pid(data_dir)
        assert server is not None and psutil.pid_exists(server)
        line = refused(state)
        assert f"the embedded Postgres in {data_dir} is in use by pid {user.pid} (" in line
        assert line.endswith("; stop it first"), line
        assert (data_dir / "PG_VERSION").exists()
        # Killed, the user stays in the wheel's list and the server keeps running.
        assert user.stdin is not None
        user.stdin.write("kill\n")
        user.stdin.flush()
        assert user.wait(timeout=60) == -signal.SIGKILL
    finally:
        stop(user)
    assert postmaster_pid(data_dir) == server
    postmaster = psutil.Process(server)
    deleted(state)
    _, running = psutil.wait_procs([postmaster], timeout=30)
    assert not running, f"the embedded Postgres (pid {server}) still runs"


def test_reset_refuses_while_the_local_airflow_runs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "airflow").mkdir(parents=True)
    scheduler = subprocess.Popen(["sleep", "300"])
    try:
        (state / "airflow" / "onering-pids.json").write_text(f'{{"scheduler": {scheduler.pid}}}')
        assert refused(state) == (
            f"error: the local Airflow in {state / 'airflow'} is running (pid {scheduler.pid}); "
            "stop it first with `onering airflow down`"
        )
    finally:
        stop(scheduler)
    # Its pid file stays after a crash: a dead (or since reused) pid does not count.
    deleted(state)


def test_reset_without_state_says_so(tmp_path: Path) -> None:
    proc = ok(onering(tmp_path / "none", None, "reset", "--yes"))
    assert "nothing to reset" in proc.stdout
