"""OneRing's changelog applier against the real Liquibase 4.3.3 on the embedded PostgreSQL 18.

Liquibase comes from ``ops/scripts/ensure-liquibase.sh`` (npm ``node-liquibase@4.3.3``, which
bundles Liquibase and a PostgreSQL JDBC driver) and runs on Java; without npm or Java these
tests are skipped with the reason. Each test uses its own database in one embedded server.
The embedded server listens only on a Unix socket, which the JDBC driver cannot reach, so a
loopback TCP relay in this process carries Liquibase's connection to that socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from onering_assets.errors import ChangelogError
from onering_assets.gold.assets import LIQUIBASE_DIR
from onering_assets.gold.ddl import _LOG_DDL, _hold_liquibase_lock, apply_changelogs, read_changelog
from onering_assets.resources import PostgresResource
from onering_assets.resources.postgres import stop_embedded

ROOT = Path(__file__).resolve().parents[2]
ENSURE = ROOT / "ops" / "scripts" / "ensure-liquibase.sh"
LIQUIBASE_TIMEOUT = 180
# What the rows must agree on; dateexecuted and deployment_id are the run's own.
ROW = (
    "id, author, filename, orderexecuted, exectype, md5sum, description, comments, tag,"
    " liquibase, contexts, labels"
)


@pytest.fixture(scope="module")
def liquibase() -> Path:
    try:
        done = subprocess.run(
            ["bash", str(ENSURE)], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"Liquibase could not be installed: {e}")
    if done.returncode != 0:
        pytest.skip(f"Liquibase unavailable: {done.stderr.strip().splitlines()[-1:]}")
    return Path(done.stdout.strip())


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _relay(unix_path: str) -> socketserver.ThreadingTCPServer:
    """A loopback TCP port whose connections are carried to a Unix socket."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.socket(socket.AF_UNIX) as upstream:
                upstream.connect(unix_path)
                back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
                back.start()
                _pump(self.request, upstream)
                back.join()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass(frozen=True)
class Server:
    """The embedded server as psycopg and as Liquibase (JDBC) reach it."""

    conninfo: str
    jdbc_host: str
    jdbc_port: int

    def dsn(self, database: str) -> str:
        return make_conninfo(self.conninfo, dbname=database)

    def create(self, database: str) -> str:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return self.dsn(database)

    def liquibase_args(self, database: str) -> list[str]:
        params = conninfo_to_dict(self.conninfo)
        args = [
            f"--url=jdbc:postgresql://{self.jdbc_host}:{self.jdbc_port}/{database}",
            f"--username={params.get('user') or 'postgres'}",
        ]
        if params.get("password"):
            args.append(f"--password={params['password']}")
        return args


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # Outside pytest's base temp folder: other pytest processes reset its mode to 0700,
    # which locks out the embedded server's own system user.
    folder = Path(tempfile.mkdtemp(prefix="onering-liquibase-"))
    folder.chmod(0o755)
    try:
        yield from _serve(PostgresResource(embedded_dir=str(folder / "pg")))
    finally:
        stop_embedded(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


def _serve(pg: PostgresResource) -> Iterator[Server]:
    conninfo = pg.conninfo()
    params = conninfo_to_dict(conninfo)
    host = str(params.get("host") or "")
    port = int(params.get("port") or 5432)
    if not host.startswith("/"):
        yield Server(conninfo, host, port)
        return
    relay = _relay(f"{host}/.s.PGSQL.{port}")
    try:
        yield Server(conninfo, "127.0.0.1", relay.server_address[1])
    finally:
        relay.shutdown()
        relay.server_close()


LiquibaseRun = Callable[..., str]


@pytest.fixture(scope="module")
def run_liquibase(liquibase: Path, server: Server) -> LiquibaseRun:
    """Run Liquibase in a changelog folder, as its liquibase.properties asks; return its output."""

    def run(database: str, *command: str, folder: Path = LIQUIBASE_DIR, ok: bool = True) -> str:
        done = subprocess.run(
            [str(liquibase), *server.liquibase_args(database), *command],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=LIQUIBASE_TIMEOUT,
            check=False,
        )
        output = done.stdout + done.stderr
        if (done.returncode == 0) != ok:
            pytest.fail(f"liquibase {' '.join(command)} exited {done.returncode}:\n{output}")
        return output

    return run


def changelog_rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f"SELECT {ROW} FROM public.databasechangelog ORDER BY orderexecuted"
        ).fetchall()


def full_rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT * FROM public.databasechangelog ORDER BY orderexecuted"
        ).fetchall()


def schema(dsn: str) -> dict[str, list[tuple]]:
    """Columns, constraints and their key columns of every user table, from information_schema."""
    mine = "NOT IN ('pg_catalog', 'information_schema')"
    queries = {
        "columns": "SELECT table_schema, table_name, ordinal_position, column_name, data_type,"
        " is_nullable, column_default, character_maximum_length, numeric_precision"
        f" FROM information_schema.columns WHERE table_schema {mine} ORDER BY 1, 2, 3",
        "constraints": "SELECT table_schema, table_name, constraint_name, constraint_type"
        f" FROM information_schema.table_constraints WHERE table_schema {mine}"
        " AND constraint_type <> 'CHECK' ORDER BY 1, 2, 3",
        "keys": "SELECT table_schema, table_name, constraint_name, column_name, ordinal_position"
        f" FROM information_schema.key_column_usage WHERE table_schema {mine} ORDER BY 1, 2, 3, 5",
        "tables": "SELECT table_schema, table_name, table_type FROM information_schema.tables"
        f" WHERE table_schema {mine} ORDER BY 1, 2",
    }
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(q).fetchall() for name, q in queries.items()}  # type: ignore[arg-type]


def onering_apply(dsn: str, folder: Path = LIQUIBASE_DIR) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return apply_changelogs(conn, folder)


def test_liquibase_finds_nothing_to_do_after_onering(
    server: Server, run_liquibase: LiquibaseRun
) -> None:
    dsn = server.create("onering_first")
    applied = onering_apply(dsn)
    assert len(applied) == len(read_changelog(LIQUIBASE_DIR)) >= 4
    before, tables = full_rows(dsn), schema(dsn)

    status = run_liquibase("onering_first", "status", "--verbose")
    assert "is up to date" in status, status
    run_liquibase("onering_first", "update")

    assert full_rows(dsn) == before  # no row added, none re-stamped, every md5sum kept
    assert schema(dsn) == tables


def test_onering_finds_nothing_to_do_after_liquibase(
    server: Server, run_liquibase: LiquibaseRun
) -> None:
    by_liquibase = server.create("liquibase_first")
    run_liquibase("liquibase_first", "update")
    recorded = full_rows(by_liquibase)

    assert onering_apply(by_liquibase) == []
    assert full_rows(by_liquibase) == recorded

    by_onering = server.create("onering_only")
    onering_apply(by_onering)
    assert schema(by_onering) == schema(by_liquibase)
    # The same rows (dateexecuted and deployment_id aside) as Liquibase 4.3.3 writes.
    assert changelog_rows(by_onering) == changelog_rows(by_liquibase)
    assert {r[0] for r in changelog_rows(by_onering)} >= {"001-gold-schema"}
    for row in full_rows(by_onering):
        assert re.fullmatch(r"\d{10}", row[-1]) and row[3] is not None


def _edit(folder: Path, old: str, new: str) -> None:
    path = folder / "changelog" / "001-gold-schema.sql"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_edited_applied_changeset_is_refused_by_onering_as_by_liquibase(
    server: Server, run_liquibase: LiquibaseRun, tmp_path: Path
) -> None:
    folder = tmp_path / "liquibase"
    shutil.copytree(LIQUIBASE_DIR, folder)
    dsn = server.create("edited")
    onering_apply(dsn, folder)
    recorded = full_rows(dsn)

    # Whitespace is not an edit for Liquibase's checksum, nor for OneRing's.
    _edit(folder, "    origin text NOT NULL,\n    dest", "  origin   text NOT NULL,\n\tdest")
    assert onering_apply(dsn, folder) == []

    _edit(folder, "avg_distance double precision", "avg_distance numeric")
    with pytest.raises(ChangelogError) as refused:
        onering_apply(dsn, folder)
    message = str(refused.value)
    assert "changelog/001-gold-schema.sql" in message
    assert "onering:003-route-performance" in message
    assert "add a new changeset" in message
    assert full_rows(dsn) == recorded
    # Liquibase refuses it too, and computes the same checksum for the edited changeset.
    edited = next(cs for cs in read_changelog(folder) if cs.id == "003-route-performance")
    failed = run_liquibase("edited", "update", folder=folder, ok=False)
    assert "003-route-performance::onering was:" in failed, failed
    assert f"but is now: {edited.checksum}" in failed, failed

    # Accepting the edit on purpose, the way Liquibase offers, works for both.
    _edit(
        folder,
        "--changeset onering:003-route-performance\n",
        f"--changeset onering:003-route-performance\n--validCheckSum: {edited.checksum}\n",
    )
    assert onering_apply(dsn, folder) == []
    run_liquibase("edited", "update", folder=folder)
    assert full_rows(dsn) == recorded


def _apply_as_the_earlier_onering(dsn: str, folder: Path) -> None:
    """The rows the applier before this one wrote: bare file name, no md5sum, a sha256.

    It knew the changesets of 001-gold-schema.sql only; later files are the new applier's.
    """
    changeset = re.compile(r"^--changeset\s+([^:\s]+):(\S+)", re.MULTILINE)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE public.databasechangelog (id varchar(255) NOT NULL,"
            " author varchar(255) NOT NULL, filename varchar(255) NOT NULL,"
            " dateexecuted timestamp NOT NULL, orderexecuted integer NOT NULL,"
            " exectype varchar(10) NOT NULL, md5sum varchar(35), description varchar(255),"
            " comments varchar(255), tag varchar(255), liquibase varchar(20),"
            " contexts varchar(255), labels varchar(255), deployment_id varchar(10))"
        )
        order = 1
        for path in [folder / "changelog" / "001-gold-schema.sql"]:
            text = path.read_text()
            matches = list(changeset.finditer(text))
            for i, match in enumerate(matches):
                end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
                body = "\n".join(
                    line
                    for line in text[match.end() : end].splitlines()
                    if not line.lstrip().startswith("--")
                ).strip()
                conn.execute(body)  # type: ignore[arg-type]
                conn.execute(
                    "INSERT INTO public.databasechangelog (id, author, filename, dateexecuted,"
                    " orderexecuted, exectype, description, comments, liquibase)"
                    " VALUES (%s, %s, %s, now(), %s, 'EXECUTED', 'sql', %s, 'onering')",
                    (
                        match.group(2),
                        match.group(1),
                        path.name,
                        order,
                        "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:32],
                    ),
                )
                order += 1


def test_rows_of_the_earlier_applier_are_upgraded_in_place(
    server: Server, run_liquibase: LiquibaseRun, tmp_path: Path
) -> None:
    dsn = server.create("earlier")
    _apply_as_the_earlier_onering(dsn, LIQUIBASE_DIR)
    assert all(r[5] is None for r in changelog_rows(dsn))

    earlier = {r[0] for r in changelog_rows(dsn)}
    applied = onering_apply(dsn)
    assert {label.split(":", 1)[1] for label in applied}.isdisjoint(earlier)
    by_liquibase = server.create("earlier_reference")
    run_liquibase("earlier_reference", "update")
    assert changelog_rows(dsn) == changelog_rows(by_liquibase)
    assert "is up to date" in run_liquibase("earlier", "status", "--verbose")

    # An edit made after the earlier applier ran is still caught, by its sha256.
    folder = tmp_path / "liquibase"
    shutil.copytree(LIQUIBASE_DIR, folder)
    stale = server.create("earlier_edited")
    _apply_as_the_earlier_onering(stale, folder)
    _edit(folder, "avg_air_time double precision", "avg_air_time real")
    with pytest.raises(ChangelogError, match="onering:003-route-performance"):
        onering_apply(stale, folder)


def test_a_real_liquibase_waits_for_onering(server: Server, liquibase: Path) -> None:
    """While OneRing's migration transaction is open, Liquibase blocks on its own lock row."""
    dsn = server.create("concurrent")
    command = [str(liquibase), *server.liquibase_args("concurrent"), "update"]
    with psycopg.connect(dsn) as conn, conn.transaction():
        _hold_liquibase_lock(conn)
        conn.execute(_LOG_DDL)  # committed first, as in a database migrated before
    with psycopg.connect(dsn) as conn, conn.transaction():
        _hold_liquibase_lock(conn)
        waiting = subprocess.Popen(
            command, cwd=LIQUIBASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        blocked = _wait_for_lock_wait(dsn, "databasechangeloglock")
        still_running = waiting.poll() is None
    try:
        output, _ = waiting.communicate(timeout=LIQUIBASE_TIMEOUT)
    except subprocess.TimeoutExpired:
        waiting.kill()
        output, _ = waiting.communicate()
        pytest.fail(f"liquibase update did not finish after OneRing committed:\n{output}")
    assert blocked and still_running, output
    assert waiting.returncode == 0, output
    assert len(full_rows(dsn)) == len(read_changelog(LIQUIBASE_DIR))


def _wait_for_lock_wait(dsn: str, table: str, timeout: float = 60.0) -> bool:
    """Whether another session is seen waiting on a lock for a statement on ``table``."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query ILIKE %s",
                (f"%{table}%",),
            ).fetchone()
            if row and row[0]:
                return True
            time.sleep(0.2)
    return False
