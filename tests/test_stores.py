"""`onering stores up|down|status`: Gold reachable from the user's own tools, for real.

A small Gold (3,000 January flights, `route_performance` and its upstream) is built by a
real `onering materialize`; then real `onering stores` processes start and stop the keeper,
and Debian's `psql` (a separate program, over TCP on 127.0.0.1) reads Gold with the DSN
`up` printed after `up` has returned. The pytest process never starts the embedded
Postgres itself, so it is never one of the server's users.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import psycopg
import pytest

from onering_assets.resources.embedded_pg import postmaster_pid
from onering_assets.settings import PROJECT_ROOT, Settings
from onering_assets.stores import running
from tests.conftest import SourceFactory
from tests.test_faults import cli_env, ok, onering

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("psql") is None,
        reason="psql (the PostgreSQL client, Debian package postgresql-client) is not installed",
    ),
]
DSN = re.compile(r"postgresql://onering_reader:[^@\s]+@127\.0\.0\.1:(\d+)/postgres")
FLIGHTS = 3000
UP_LIMIT_S = 60.0
BUILD = ("--select", '+key:"gold/route_performance"', "--partition", "2013-01")


@dataclass(frozen=True)
class Gold:
    state: Path
    source: Path
    routes: int  # rows of gold.route_performance: the (origin, dest) pairs of the source


def routes(flights: pd.DataFrame) -> int:
    return flights.groupby(["origin", "dest"]).ngroups


@pytest.fixture(scope="module")
def gold(
    tmp_path_factory: pytest.TempPathFactory,
    make_source: SourceFactory,
    flights_jan_feb: pd.DataFrame,
) -> Iterator[Gold]:
    flights = flights_jan_feb.head(FLIGHTS)
    assert set(flights["month"]) == {"1"}
    source = make_source(flights=flights)
    state = tmp_path_factory.mktemp("stores") / "state"
    ok(onering(state, source, "materialize", *BUILD))
    yield Gold(state, source, routes(flights))
    onering(state, source, "stores", "down")
    keeper = running(Settings(profile="local", state_dir=state))
    if keeper is not None:  # down failed: leave no process behind
        os.kill(keeper.pid, signal.SIGKILL)


def stores(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return onering(state, None, "stores", *args)


def up(state: Path, *args: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    """`onering stores up`: it returns within the limit and prints the reader DSN."""
    began = time.monotonic()
    proc = ok(stores(state, "up", *args))
    took = time.monotonic() - began
    assert took < UP_LIMIT_S, f"`onering stores up` took {took:.1f} s"
    found = DSN.search(proc.stdout)
    assert found, proc.stdout
    assert f"psql \"{found.group(0)}\" -c 'SELECT * FROM gold.route_performance LIMIT 5'" in (
        proc.stdout
    )
    return found.group(0), proc


def psql(dsn: str, *commands: str) -> subprocess.CompletedProcess[str]:
    """Debian's psql, a separate program, with nothing but the DSN to log in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    args = ["psql", dsn, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    for command in commands:
        args += ["-c", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


def count(dsn: str) -> int:
    proc = psql(dsn, "SELECT count(*) FROM gold.route_performance")
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def refused(dsn: str, *commands: str) -> str:
    proc = psql(dsn, *commands)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def status(state: Path) -> dict:
    proc = stores(state, "status", "--json")
    assert proc.returncode in (0, 3), proc.stderr
    return json.loads(proc.stdout)


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """The postmaster of ``data_dir`` and its children (backends, checkpointer…)."""
    pid = postmaster_pid(data_dir)
    if pid is None or not psutil.pid_exists(pid):
        return []
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


def running_for(data_dir: Path) -> list[int]:
    """Live processes whose command line names ``data_dir`` (a postmaster would)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        words = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(data_dir) in words:
            found.append(proc.pid)
    return found


def assert_stopped(dsn: str, data_dir: Path, before: list[psutil.Process]) -> None:
    assert before, "no server ran before"
    _, alive = psutil.wait_procs(before, timeout=10)
    assert not alive, f"left running: {[p.pid for p in alive]}"
    assert running_for(data_dir) == []
    assert "Connection refused" in refused(dsn, "SELECT 1")


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    output = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    return output


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_up_where_gold_was_never_materialized_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "never"
    empty = tmp_path / "empty"
    (empty / "lake").mkdir(parents=True)
    for state in (missing, empty):
        before = listing(state)
        proc = stores(state, "up")
        assert proc.returncode == 1
        assert one_line(proc) == (
            f"error: Gold was never materialized in {state} (no embedded Postgres yet): "
            "run `make demo` first."
        )
        assert listing(state) == before
    assert stores(missing, "status").returncode == 3
    assert one_line(ok(stores(missing, "down"))) == "the stores were not up; nothing to stop."
    assert not missing.exists()


def test_up_serves_gold_read_only_over_tcp_and_is_idempotent(gold: Gold) -> None:
    dsn, first = up(gold.state)
    settings = Settings(profile="local", state_dir=gold.state)
    keeper = running(settings)
    assert keeper is not None and psutil.pid_exists(keeper.pid)  # `up` returned, it runs
    secrets = json.loads((gold.state / "postgres-secrets.json").read_text())
    assert secrets["reader"] in dsn and secrets["superuser"] not in first.stdout + first.stderr
    assert "onering sql" in first.stdout and "compose" in first.stdout

    assert count(dsn) == gold.routes
    # The reader's transactions are read-only, and without that it lacks the privilege.
    assert "read-only transaction" in refused(dsn, "DELETE FROM gold.route_performance")
    assert "permission denied for table route_performance" in refused(
        dsn, "SET default_transaction_read_only = off", "DELETE FROM gold.route_performance"
    )
    secrets_file = gold.state / "postgres-secrets.json"
    assert "permission denied for function pg_read_file" in refused(
        dsn, f"SELECT pg_read_file('{secrets_file}')"
    )
    # No temporary table to COPY into (the reader may not create one), nor the COPY itself.
    assert "permission denied to create temporary tables" in refused(
        dsn, "SET default_transaction_read_only = off", "CREATE TEMP TABLE lines (line text)"
    )
    assert "permission denied to COPY from a file" in refused(
        dsn,
        "SET default_transaction_read_only = off",
        f"COPY gold.route_performance FROM '{secrets_file}'",
    )
    assert "permission denied for table databasechangelog" in refused(
        dsn, "SELECT * FROM public.databasechangelog"
    )
    assert "permission denied for table pg_authid" in refused(dsn, "SELECT * FROM pg_authid")
    assert "password authentication failed" in refused(
        dsn.replace(secrets["reader"], "wrong"), "SELECT 1"
    )
    assert count(dsn) == gold.routes

    again, second = up(gold.state)
    assert again == dsn
    assert "is already up" in second.stdout and f"kept by pid {keeper.pid}" in second.stdout
    assert running(settings) == keeper
    as_json = json.loads(ok(stores(gold.state, "up", "--json")).stdout)
    assert as_json["dsn"] == dsn and as_json["already_up"] is True

    proc = ok(stores(gold.state, "status"))
    assert proc.stdout.startswith(f"up: keeper pid {keeper.pid}, Postgres pid ")
    assert dsn in proc.stdout
    found = status(gold.state)
    assert found["up"] is True and found["keeper_pid"] == keeper.pid and found["dsn"] == dsn
    assert found["server_pid"] == postmaster_pid(gold.state / "postgres")
    assert found["uptime_s"] >= 0

    other = str(keeper.port + 1 if keeper.port < 65535 else keeper.port - 1)
    busy = stores(gold.state, "up", "--port", other)
    assert busy.returncode == 2
    assert "already up on port" in one_line(busy)
    assert stores(gold.state, "up", "--port", "70000").returncode == 2


def test_down_stops_the_server_and_up_again_gives_the_same_dsn(gold: Gold) -> None:
    data_dir = gold.state / "postgres"
    dsn, _ = up(gold.state)
    keeper = running(Settings(profile="local", state_dir=gold.state))
    assert keeper is not None
    before = server_processes(data_dir)
    proc = ok(stores(gold.state, "down"))
    assert one_line(proc) == (
        f"stopped the stores keeper (pid {keeper.pid}); the embedded Postgres stopped."
    )
    assert not psutil.pid_exists(keeper.pid)
    assert_stopped(dsn, data_dir, before)
    assert stores(gold.state, "status").returncode == 3
    assert status(gold.state)["up"] is False

    again, _ = up(gold.state)
    assert again == dsn  # the port is kept: a DSN given to a tool stays valid
    assert count(again) == gold.routes
    # A killed keeper stays in the wheel's list and the server keeps running: `down` stops it.
    killed = running(Settings(profile="local", state_dir=gold.state))
    assert killed is not None
    before = server_processes(data_dir)
    os.kill(killed.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(killed.pid)], timeout=10)
    assert stores(gold.state, "status").returncode == 3
    assert one_line(ok(stores(gold.state, "down"))) == (
        "the stores were not up; the embedded Postgres stopped."
    )
    assert_stopped(dsn, data_dir, before)
    assert one_line(ok(stores(gold.state, "down"))) == "the stores were not up; nothing to stop."


def test_up_applies_the_reader_changesets_a_gold_made_before_them_lacks(gold: Gold) -> None:
    """A Gold made before 002-gold-reader.sql has no reader role: `up` migrates, then serves."""
    dsn, _ = up(gold.state)
    secrets = json.loads((gold.state / "postgres-secrets.json").read_text())
    owner = dsn.replace(f"onering_reader:{secrets['reader']}@", f"postgres:{secrets['superuser']}@")
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("DROP OWNED BY onering_reader")
        conn.execute("DROP ROLE onering_reader")
        conn.execute("DELETE FROM public.databasechangelog WHERE id LIKE '%gold-reader%'")
    assert "password authentication failed" in refused(dsn, "SELECT 1")
    ok(stores(gold.state, "down"))

    assert up(gold.state)[0] == dsn
    assert count(dsn) == gold.routes
    assert "read-only transaction" in refused(dsn, "DELETE FROM gold.route_performance")
    with psycopg.connect(owner) as conn:
        ids = conn.execute("SELECT id FROM public.databasechangelog ORDER BY orderexecuted")
        assert [r[0] for r in ids][-2:] == ["005-gold-reader-role", "006-gold-reader-grants"]


def test_a_run_while_up_publishes_and_reset_refuses(
    gold: Gold, make_source: SourceFactory, flights_jan_feb: pd.DataFrame
) -> None:
    dsn, _ = up(gold.state)
    keeper = running(Settings(profile="local", state_dir=gold.state))
    assert keeper is not None
    more = flights_jan_feb.head(FLIGHTS + 2000)
    assert routes(more) > gold.routes
    ok(onering(gold.state, make_source(flights=more), "materialize", *BUILD))
    assert count(dsn) == routes(more)  # published while up, read through the same DSN
    assert running(Settings(profile="local", state_dir=gold.state)) == keeper

    reset = onering(gold.state, None, "reset", "--yes")
    assert reset.returncode == 2
    line = one_line(reset)
    # The keeper is one of the server's listed users, named as what `stores up` started.
    assert f"pid {keeper.pid}" in line and "stop it first with `onering stores down`" in line, line
    assert (gold.state / "postgres" / "PG_VERSION").exists()


def test_compose_profile_prints_the_configured_dsns_and_starts_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = cli_env(state, None)
    env.update(
        ONERING_PROFILE="compose",
        ONERING_POSTGRES_DSN="postgresql://onering:owner-secret@127.0.0.1:5432/onering",
        ONERING_POSTGRES_READER_DSN="postgresql://onering_reader:rpw@127.0.0.1:5432/onering",
        ONERING_CLICKHOUSE_DSN="http://onering:ch-secret@127.0.0.1:8123",
    )

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "onering_assets.cli", "stores", *args],
            env={**env, **extra},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    proc = ok(run("up"))
    assert "postgresql://onering_reader:rpw@127.0.0.1:5432/onering" in proc.stdout
    assert "http://onering:***@127.0.0.1:8123" in proc.stdout
    assert "owner-secret" not in proc.stdout and "ch-secret" not in proc.stdout
    assert json.loads(ok(run("status", "--json")).stdout)["profile"] == "compose"
    assert "nothing to stop" in one_line(ok(run("down")))
    missing = run("up", ONERING_POSTGRES_READER_DSN="")
    assert missing.returncode == 2
    assert "ONERING_POSTGRES_READER_DSN is not set" in one_line(missing)
    assert not state.exists()
