"""`onering assets list|show`, `sql` and `dev`: browse the graph and query the stores."""

from __future__ import annotations

import os
import subprocess
from typing import Annotated

import typer
from rich.table import Table

from onering_assets.cli.common import Select, app, assets_app, err, fail, load, out
from onering_assets.errors import OneRingError
from onering_assets.settings import Settings


@assets_app.command("list")
def assets_list(select: Select = None) -> None:
    """Every asset with its group, partitions, checks and latest materialization."""
    from onering_assets.browse import asset_rows
    from onering_assets.runner import resolve_selection

    try:
        _, defs, instance = load()
        keys = resolve_selection(defs, select)
    except OneRingError as e:
        raise fail(str(e)) from None
    table = Table()
    for column in ("asset", "group", "partitions", "checks", "last materialized", "description"):
        table.add_column(column, overflow="fold")
    for row in asset_rows(defs, instance, keys):
        table.add_row(*row)
    out.print(table)


@assets_app.command("show")
def assets_show(
    key: Annotated[str, typer.Argument(help="Asset key, e.g. gold/route_performance.")],
) -> None:
    """Description, owners, columns, lineage, checks and the latest run of one asset."""
    from onering_assets.browse import show_asset

    try:
        _, defs, instance = load()
        show_asset(out, defs, instance, key)
    except OneRingError as e:
        raise fail(str(e)) from None


@app.command()
def dev(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000) -> None:
    """Start the Dagster UI (and daemon) on 127.0.0.1."""
    from onering_assets.devserver import command
    from onering_assets.runner import instance_for

    instance_for(Settings.from_env())
    err.print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    raise typer.Exit(subprocess.call(command(port), env=os.environ.copy()))
