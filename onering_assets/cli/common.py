"""What every `onering` command shares: the app, console, options and one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from onering_assets.errors import OneRingError
from onering_assets.settings import LAYER_ORDER, Settings

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


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load():
    """Settings, definitions and the persistent instance, with one-line errors."""
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import instance_for

    settings = Settings.from_env()
    return settings, build_definitions(settings), instance_for(settings)


def print_summary(summary, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("asset")
    table.add_column("rows", justify="right")
    table.add_column("rejected", justify="right")
    for key in sorted(summary.rows, key=lambda k: (LAYER_ORDER.get(k.split("/")[0], 9), k)):
        rows, rejected = summary.rows[key], summary.rejected.get(key)
        table.add_row(
            key,
            f"{rows:,}" if isinstance(rows, int) else "-",
            f"{rejected:,}" if isinstance(rejected, int) else "",
        )
    if summary.rows:
        out.print(table)
    failed = [c for c in summary.checks if not c[2]]
    out.print(
        f"checks: {summary.checks_passed} passed, {len(failed)} failed; "
        f"time {summary.seconds:.1f} s; run {summary.run_id}"
    )
    for asset, check, _, description in failed:
        out.print(f"  [red]failed[/red] {asset}:{check} — {description}", highlight=False)
    for failure in summary.failures:
        out.print(
            f"  [red]step failed[/red] {failure.splitlines()[0]}", highlight=False, soft_wrap=True
        )


Tags = Annotated[list[str] | None, typer.Option("--tag", help="Run tag KEY=VALUE (repeatable).")]


def parse_tags(values: list[str] | None) -> dict[str, str]:
    tags = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise OneRingError(f"--tag {value!r}: use KEY=VALUE.")
        tags[key] = val
    return tags


def report(summary, defs, title: str, as_json: bool) -> None:
    """The run summary as a table, or as one line of JSON for scripts and Airflow."""
    from onering_assets.runner import blocking_by_check

    if as_json:
        sys.stdout.write(json.dumps(summary.to_dict(blocking_by_check(defs)), default=str) + "\n")
    else:
        print_summary(summary, title)
