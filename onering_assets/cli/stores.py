"""`onering stores up|down|status`: Gold reachable from psql, DBeaver or a BI tool.

Locally, `up` starts a detached keeper (onering_assets/stores.py) that keeps the embedded
Postgres running after the command returns and serves it on 127.0.0.1; it prints the
read-only ``onering_reader`` DSN, never the superuser's. On the compose profile the stores
are servers of their own: the commands print the configured DSNs and start nothing.

Exit codes: 0 done (`status`: the stores are up); 1 a failure (nothing materialized yet,
the keeper could not start); 2 misuse (a bad option or setting, `up --port` while up on
another port); `status` exits 3 when the stores are not up. Errors are one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer

from onering_assets.cli.common import app, fail, out
from onering_assets.errors import ConfigError, OneRingError
from onering_assets.resources.state_lock import show
from onering_assets.settings import Settings

stores_app = typer.Typer(
    help="Keep Gold's embedded Postgres up for your own tools (psql, DBeaver, BI).",
    no_args_is_help=True,
)
app.add_typer(stores_app, name="stores")

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts).")]
Port = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=0,
        max=65535,
        help="TCP port on 127.0.0.1 (default: the last one used if free, else any; 0: any).",
        show_default=False,
    ),
]
EXIT_NOT_UP = 3
EXAMPLE = "SELECT * FROM gold.route_performance LIMIT 5"
SILVER_NOTE = (
    "Silver (chDB) runs in-process, not as a server: query it with "
    '`onering sql "SELECT … FROM silver.flights"`. On the compose profile ClickHouse and '
    "Postgres are real servers with their own ports."
)


def say(message: str) -> None:
    out.print(message, highlight=False, soft_wrap=True, markup=False)


def refuse(error: OneRingError) -> typer.Exit:
    """One line on stderr: exit 2 for a bad setting or state to fix by hand, else 1."""
    return fail(str(error), 2 if isinstance(error, ConfigError) else 1)


def settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as e:
        raise refuse(e) from None


def uptime(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def describe(conf: Settings, already: bool | None = None) -> dict[str, Any]:
    """What `status --json` prints: is the keeper up, its pid, the server's, the DSN."""
    from onering_assets import stores

    keeper = stores.running(conf)
    found: dict[str, Any] = {
        "profile": "local",
        "up": keeper is not None,
        "keeper_pid": keeper.pid if keeper else None,
        "server_pid": stores.server_pid(conf),
        "port": keeper.port if keeper else None,
        "dsn": stores.reader_dsn(conf, keeper.port) if keeper else None,
        "started_at": datetime.fromtimestamp(keeper.started, UTC).isoformat() if keeper else None,
        "uptime_s": round(keeper.uptime_s, 1) if keeper else None,
        "data_dir": str(conf.postgres_dir),
    }
    if already is not None:
        found["already_up"] = already
    return found


def print_json(found: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(found) + "\n")


def print_dsn(found: dict[str, Any]) -> None:
    say(f"  reader DSN (SELECT on schema gold only): {found['dsn']}")
    say(f"  try: psql \"{found['dsn']}\" -c '{EXAMPLE}'")


def masked(dsn: str) -> str:
    """A DSN with its password shown as ***."""
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "(unreadable)"


def compose(as_json: bool) -> None:
    """Print the configured DSNs of the compose servers; start nothing."""
    reader = os.environ.get("ONERING_POSTGRES_READER_DSN")
    clickhouse = os.environ.get("ONERING_CLICKHOUSE_DSN")
    if not reader:
        raise fail(
            "compose profile: ONERING_POSTGRES_READER_DSN is not set (see compose/onering.env); "
            "nothing to print.",
            2,
        )
    if as_json:
        silver = masked(clickhouse) if clickhouse else None
        print_json({"profile": "compose", "dsn": reader, "clickhouse": silver})
        return
    say(
        "compose profile: the stores are servers of their own (compose/docker-compose.yml); "
        "nothing to start or stop here."
    )
    say(f"  Gold reader DSN: {reader}")
    say(f"  try: psql \"{reader}\" -c '{EXAMPLE}'")
    if clickhouse:
        say(f"  Silver ClickHouse: {masked(clickhouse)}")


@stores_app.command("up")
def stores_up(port: Port = None, as_json: AsJson = False) -> None:
    """Start the embedded Gold Postgres and keep it up on 127.0.0.1; print the reader DSN.

    Creates nothing: if Gold was never materialized it says so (exit 1). Works alongside
    `onering dev` and runs; stop it with `onering stores down`.
    """
    from onering_assets import stores

    conf = settings()
    if conf.profile == "compose":
        compose(as_json)
        return
    if not stores.built(conf):
        raise fail(
            f"Gold was never materialized in {show(conf.state_dir)} (no embedded Postgres yet): "
            "run `make demo` first.",
            1,
        )
    up = stores.running(conf)
    if up is not None and port not in (None, 0, up.port):
        raise fail(
            f"the stores are already up on port {up.port}; run `onering stores down` first "
            f"to serve them on port {port}.",
            2,
        )
    last = stores.last_port(conf)
    try:
        keeper, already = stores.start_keeper(conf, port)
        found = describe(conf, already)
    except OneRingError as e:
        raise refuse(e) from None
    if as_json:
        print_json(found)
        return
    state = "already up" if already else "up"
    say(
        f"Gold (embedded Postgres in {show(conf.postgres_dir)}) is {state} on {stores.HOST}:"
        f"{keeper.port}, kept by pid {keeper.pid}; stop it with `onering stores down`."
    )
    print_dsn(found)
    if not already and port is None and last and keeper.port != last:
        say(f"  (port {last}, served last time, is taken by another program: the DSN changed)")
    say(SILVER_NOTE)


@stores_app.command("down")
def stores_down() -> None:
    """Stop the keeper; the server stops unless another OneRing process uses it."""
    from onering_assets import stores

    conf = settings()
    if conf.profile == "compose":
        say("compose profile: nothing to stop; its servers are run by docker compose.")
        return
    try:
        keeper = stores.stop_keeper(conf)
        stopped, busy = stores.stop_if_unused(conf)
    except OneRingError as e:
        raise refuse(e) from None
    what = f"stopped the stores keeper (pid {keeper.pid})" if keeper else "the stores were not up"
    if busy:
        say(
            f"{what}; the embedded Postgres is left running: {busy} (it stops with its last "
            "user, or at the next `onering stores down`)."
        )
    elif keeper or stopped:
        say(f"{what}; the embedded Postgres stopped.")
    else:
        say(f"{what}; nothing to stop.")


@stores_app.command("status")
def stores_status(as_json: AsJson = False) -> None:
    """Whether the stores are up: the keeper's pid, the server's, the reader DSN, uptime.

    Exit 0 when up, 3 when not.
    """
    conf = settings()
    if conf.profile == "compose":
        compose(as_json)
        return
    try:
        found = describe(conf)
    except OneRingError as e:
        raise refuse(e) from None
    if as_json:
        print_json(found)
    elif found["up"]:
        server = f"Postgres pid {found['server_pid']}" if found["server_pid"] else "Postgres down"
        say(
            f"up: keeper pid {found['keeper_pid']}, {server} ({show(conf.postgres_dir)}), "
            f"up {uptime(found['uptime_s'])}"
        )
        print_dsn(found)
    else:
        say("not up; start them with `onering stores up`")
    if not found["up"]:
        raise typer.Exit(EXIT_NOT_UP)
