"""Metabase: the read-only role it reads Gold as, and the setup script's REST calls.

No Metabase server can run here (it is a JVM application distributed as a jar or image from
outside the registries). What runs: the role ``onering_reader`` on the real embedded Postgres
(PostgreSQL 18) with Gold's changelogs applied; ``setup_metabase.py`` as a subprocess against
a loopback HTTP server that speaks the endpoints it calls (``/api/health``,
``/api/session/properties``, ``/api/setup``, ``/api/session``, ``/api/database``,
``/api/card``, ``/api/dashboard``) and records every request; and
``fetch-clickhouse-driver.sh``'s checks on a local jar (``file://``; the real download is
never run in tests).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import yaml
from psycopg import errors, sql

from onering_assets.catalog import load_catalog
from onering_assets.gold.assets import LIQUIBASE_DIR
from onering_assets.gold.ddl import apply_changelogs
from onering_assets.resources import PostgresResource, embedded_pg
from onering_assets.settings import PLATFORM_DIR, PROJECT_ROOT

METABASE_DIR = PLATFORM_DIR / "analytics" / "metabase"
SETUP = METABASE_DIR / "setup_metabase.py"
FETCH = METABASE_DIR / "fetch-clickhouse-driver.sh"
MARTS = [table.name for table in load_catalog().gold]
SESSION = "session-planted"


# -- the role: onering_reader on the real embedded Postgres ----------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> embedded_pg.EmbeddedPostgres:
    """Gold's changelogs applied, a row in every mart, and tables outside ``gold``."""
    data_dir = (tmp_path_factory.mktemp("pg") / "postgres").resolve()
    with PostgresResource(embedded_dir=str(data_dir)).connect() as conn:
        apply_changelogs(conn, LIQUIBASE_DIR)
        conn.execute("CREATE SCHEMA IF NOT EXISTS silver")
        conn.execute("CREATE TABLE silver.planted (a int)")
        conn.execute("CREATE TABLE public.planted (a int)")
    PostgresResource(embedded_dir=str(data_dir), role="reader").conninfo()  # its LOGIN
    return embedded_pg.start(data_dir)


def reader(server: embedded_pg.EmbeddedPostgres) -> psycopg.Connection:
    """The reader as Metabase connects: its own password, read-only switched off by hand."""
    conn = psycopg.connect(server.conninfo(embedded_pg.READER), autocommit=True)
    conn.execute("SET default_transaction_read_only = off")
    return conn


def test_the_declared_marts_are_the_gold_tables(server) -> None:
    with psycopg.connect(server.conninfo()) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'"
        ).fetchall()
    assert sorted(t[0] for t in tables) == sorted(MARTS) and len(MARTS) >= 3


@pytest.mark.parametrize("mart", MARTS)
def test_the_reader_reads_every_gold_table_and_cannot_change_it(server, mart: str) -> None:
    table = sql.Identifier("gold", mart)
    with reader(server) as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone() == (0,)
        for statement in (
            sql.SQL("INSERT INTO {} DEFAULT VALUES"),
            sql.SQL("UPDATE {} SET flights = 0"),
            sql.SQL("DELETE FROM {}"),
            sql.SQL("TRUNCATE {}"),
            sql.SQL("ALTER TABLE {} ADD COLUMN planted int"),
            sql.SQL("CREATE INDEX planted ON {} (flights)"),
            sql.SQL("DROP TABLE {}"),
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement.format(table))


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE gold.planted (a int)",
        "CREATE VIEW gold.planted AS SELECT 1",
        "CREATE TABLE public.planted_too (a int)",
        "CREATE SCHEMA planted",
        "CREATE FUNCTION gold.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ],
)
def test_the_reader_cannot_create(server, statement: str) -> None:
    with reader(server) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "table",
    [
        "public.planted",
        "silver.planted",
        "public.databasechangelog",
        "public.databasechangeloglock",
        "pg_catalog.pg_authid",
        "pg_catalog.pg_shadow",
    ],
)
def test_the_reader_cannot_read_outside_gold(server, table: str) -> None:
    with reader(server) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM {table}")  # type: ignore[arg-type]


def test_the_reader_sees_no_other_schema_in_the_catalog(server) -> None:
    """What Metabase's sync lists: only ``gold`` has tables the reader may select."""
    with reader(server) as conn:
        schemas = conn.execute(
            "SELECT DISTINCT table_schema FROM information_schema.table_privileges"
            " WHERE grantee = 'onering_reader' AND privilege_type = 'SELECT'"
        ).fetchall()
    assert schemas == [("gold",)]


# -- setup_metabase.py against a loopback Metabase -------------------------------------------


class FakeMetabase(ThreadingHTTPServer):
    """Metabase's REST endpoints that the script calls, answering as Metabase 0.53 does."""

    def __init__(self, *, set_up: bool, password: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.set_up = set_up
        self.password = password
        self.requests: list[tuple[str, str, Any, str | None]] = []
        self.objects: dict[str, list[dict[str, Any]]] = {
            "database": [],
            "card": [],
            "dashboard": [],
        }
        self.dashcards: dict[int, list[dict[str, Any]]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def sent(self, method: str, prefix: str) -> list[Any]:
        return [body for m, path, body, _ in self.requests if m == method and path == prefix]


class Handler(BaseHTTPRequestHandler):
    @property
    def metabase(self) -> FakeMetabase:
        return cast(FakeMetabase, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        session = self.headers.get("X-Metabase-Session")
        self.metabase.requests.append((method, self.path, body, session))
        code, answer = self.route(method, self.path, body, session)
        self.reply(code, answer)

    def route(self, method: str, path: str, body: Any, session: str | None) -> tuple[int, Any]:
        mb = self.metabase
        if path == "/api/health":
            return 200, {"status": "ok"}
        if path == "/api/session/properties":
            token = None if mb.set_up else "setup-token-planted"
            return 200, {"setup-token": token, "has-user-setup": mb.set_up}
        if (method, path) == ("POST", "/api/setup"):
            mb.set_up = True
            return 200, {"id": SESSION}
        if (method, path) == ("POST", "/api/session"):
            if body.get("password") != mb.password:
                return 401, {"errors": {"password": "did not match stored password"}}
            return 200, {"id": SESSION}
        if session != SESSION:
            return 401, "Unauthenticated"
        kind = path.split("/")[2].split("?")[0]
        if method == "GET" and kind in mb.objects:
            items = mb.objects[kind]
            return 200, {"data": items, "total": len(items)} if kind == "database" else items
        if method == "POST" and kind in mb.objects:
            made = {**body, "id": len(mb.objects[kind]) + 1}
            mb.objects[kind].append(made)
            return 200, made
        if method == "PUT" and kind == "dashboard":
            dashboard = int(path.split("/")[3])
            mb.dashcards[dashboard] = [{**c, "id": i + 1} for i, c in enumerate(body["dashcards"])]
            return 200, {"id": dashboard, "dashcards": mb.dashcards[dashboard]}
        return 404, {"message": f"no route {method} {path}"}

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def do_PUT(self) -> None:
        self.handle_any("PUT")


@pytest.fixture
def metabase() -> Iterator[FakeMetabase]:
    fake = FakeMetabase(set_up=False, password="planted-admin-password")
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.shutdown()
    fake.server_close()


def run_setup(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "METABASE_URL": url,
        "METABASE_ADMIN_EMAIL": "admin@onering.local",
        "METABASE_ADMIN_PASSWORD": "planted-admin-password",
        "ONERING_READER_PASSWORD": "planted-reader-password",
        "CLICKHOUSE_PASSWORD": "planted-clickhouse-password",
        "METABASE_WAIT_S": "5",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, str(SETUP)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        check=False,
    )


def test_setup_connects_gold_as_the_reader_and_builds_the_dashboard(metabase) -> None:
    done = run_setup(metabase.url)
    assert done.returncode == 0, done.stderr
    setup = metabase.sent("POST", "/api/setup")
    assert setup and setup[0]["token"] == "setup-token-planted"
    assert setup[0]["user"]["email"] == "admin@onering.local"
    gold, silver = metabase.sent("POST", "/api/database")
    assert gold["engine"] == "postgres" and gold["details"]["user"] == embedded_pg.READER
    assert gold["details"]["password"] == "planted-reader-password"
    assert (gold["details"]["host"], gold["details"]["dbname"]) == ("postgres", "onering")
    assert silver["engine"] == "clickhouse" and silver["details"]["host"] == "clickhouse"
    cards = metabase.sent("POST", "/api/card")
    assert sorted(c["name"] for c in cards) == sorted(f"gold.{m}" for m in MARTS)
    for card in cards:
        query = card["dataset_query"]
        assert query["type"] == "native" and query["database"] == 1  # Gold's id
        assert f'FROM gold."{card["name"].removeprefix("gold.")}"' in query["native"]["query"]
    (dashboard,) = metabase.sent("POST", "/api/dashboard")
    held = metabase.dashcards[1]
    assert sorted(c["card_id"] for c in held) == [c["id"] for c in metabase.objects["card"]]
    assert dashboard["name"] in done.stdout
    # Every call after logging in carries the session.
    assert all(s == SESSION for m, p, _, s in metabase.requests if p.startswith("/api/card"))
    assert "planted-reader-password" not in done.stdout + done.stderr


def test_setup_run_again_logs_in_and_creates_nothing_twice(metabase) -> None:
    assert run_setup(metabase.url).returncode == 0
    metabase.requests.clear()
    again = run_setup(metabase.url)
    assert again.returncode == 0, again.stderr
    assert metabase.sent("POST", "/api/session") and not metabase.sent("POST", "/api/setup")
    for kind in ("database", "card", "dashboard"):
        assert metabase.sent("POST", f"/api/{kind}") == []
    assert len(metabase.objects["card"]) == len(MARTS)
    assert len(metabase.dashcards[1]) == len(MARTS)


def test_a_refused_login_is_one_line_naming_the_variable(metabase) -> None:
    metabase.set_up = True
    done = run_setup(metabase.url, METABASE_ADMIN_PASSWORD="wrong")
    assert done.returncode == 1
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "METABASE_ADMIN_PASSWORD" in done.stderr and "401" in done.stderr
    assert "Traceback" not in done.stderr and "wrong" not in done.stderr


def test_a_missing_secret_is_one_line_naming_it(metabase) -> None:
    done = run_setup(metabase.url, ONERING_READER_PASSWORD="")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "setup_metabase: ONERING_READER_PASSWORD is not set: set it "
        "(compose/.env.example documents it)."
    )
    assert metabase.requests == []


def test_a_metabase_that_does_not_answer_is_one_line() -> None:
    done = run_setup("http://127.0.0.1:9", METABASE_WAIT_S="0")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "METABASE_URL" in done.stderr


# -- the driver plugin: pinned to the Metabase line compose runs -----------------------------


def _driver_version() -> str:
    found = re.search(r"CLICKHOUSE_DRIVER_VERSION:-(\d+\.\d+\.\d+)", FETCH.read_text())
    assert found is not None
    return found.group(1)


def test_the_driver_matches_the_metabase_compose_runs() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "compose" / "docker-compose.yml").read_text())
    metabase = compose["services"]["metabase"]
    minor = re.match(r"metabase/metabase:v0\.(\d+)\.", metabase["image"])
    assert minor is not None
    assert _driver_version().startswith(f"1.{minor.group(1)}.")  # 1.53.x for Metabase 0.53.x
    assert metabase["environment"]["MB_PLUGINS_DIR"] == "/plugins"
    assert (METABASE_DIR / "plugins" / ".gitkeep").exists()
    assert "*.jar" in (METABASE_DIR / "plugins" / ".gitignore").read_text().split()


def _jar(path: Path, version: str) -> Path:
    with zipfile.ZipFile(path, "w") as jar:
        jar.writestr(
            "metabase-plugin.yaml",
            f"info:\n  name: Metabase ClickHouse Driver\n  version: {version}\n",
        )
    return path


def _fetch(tmp_path: Path, jar: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(FETCH)],
        env={
            "PATH": "/usr/bin:/bin",
            "CLICKHOUSE_DRIVER_URL": jar.as_uri(),
            "METABASE_PLUGINS_DIR": str(tmp_path / "plugins"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fetch_checks_the_jar_and_pins_its_checksum(tmp_path: Path) -> None:
    """A local file:// jar stands in for the GitHub download (never fetched in tests)."""
    good = _jar(tmp_path / "good.jar", _driver_version())
    first = _fetch(tmp_path, good)
    assert first.returncode == 0, first.stderr
    installed = tmp_path / "plugins" / "clickhouse.metabase-driver.jar"
    assert installed.read_bytes() == good.read_bytes()
    assert _fetch(tmp_path, good).returncode == 0  # same bytes: the recorded digest matches

    wrong_version = _fetch(tmp_path, _jar(tmp_path / "old.jar", "1.50.7"))
    assert wrong_version.returncode == 1 and "is not the ClickHouse driver" in wrong_version.stderr
    tampered = tmp_path / "tampered.jar"
    _jar(tampered, _driver_version())
    with zipfile.ZipFile(tampered, "a") as jar:
        jar.writestr("planted.class", b"\0")
    changed = _fetch(tmp_path, tampered)
    assert changed.returncode == 1 and "checksum mismatch" in changed.stderr
    assert installed.read_bytes() == good.read_bytes()  # the good jar stays
    pinned = _fetch(tmp_path, good, CLICKHOUSE_DRIVER_SHA256="0" * 64)
    assert pinned.returncode == 1 and "checksum mismatch" in pinned.stderr
