"""`onering sql`: one read-only query against Silver or Gold."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from onering_assets.cli.common import app, fail, out
from onering_assets.errors import OneRingError
from onering_assets.settings import Settings


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One read-only statement.")],
    target: Annotated[str, typer.Option(help="silver (ClickHouse) or gold (Postgres).")] = "gold",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run a read-only query against Silver or Gold."""
    from onering_assets.browse import run_query
    from onering_assets.query import render

    if target not in ("silver", "gold") or fmt not in ("table", "csv", "json"):
        raise fail("--target is silver or gold; --format is table, csv or json.", 2)
    try:
        from onering_assets.definitions import resources_for

        columns, rows = run_query(resources_for(Settings.from_env()), target, statement)
    except OneRingError as e:
        raise fail(str(e), 2) from None
    if fmt != "table":
        sys.stdout.write(render(columns, rows, fmt))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)
