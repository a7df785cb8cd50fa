"""`onering assets list|show`, `sql` and `dev`: browse the graph and query the stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Annotated

import typer

from onering_assets.cli.common import (
    Select,
    app,
    assets_app,
    err,
    load,
    out,
    refuse,
    require_free_port,
)
from onering_assets.errors import OneRingError
from onering_assets.settings import Settings


@assets_app.command("list")
def assets_list(
    select: Select = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON array of the assets instead.")
    ] = False,
) -> None:
    """Every asset with its partitions materialized, rows, checks and latest materialization.

    Read from the Dagster instance's event log, never from the stores. Exit 2 for an
    invalid selection, 3 when it picks no asset.
    """
    from onering_assets.browse import asset_infos, list_lines
    from onering_assets.runner import resolve_selection

    try:
        _, defs, instance = load()
        keys = resolve_selection(defs, select)
        infos = asset_infos(defs, instance, keys)
    except OneRingError as e:
        raise refuse(e) from None
    if as_json:
        sys.stdout.write(json.dumps([i.to_json() for i in infos]) + "\n")
        return
    for line in list_lines(infos, out.width):
        out.print(line, highlight=False, no_wrap=True, crop=False, soft_wrap=True)


@assets_app.command("show")
def assets_show(
    key: Annotated[str, typer.Argument(help="Asset key, e.g. gold/route_performance.")],
) -> None:
    """Description, owners, columns, lineage, latest materialization and each check's result.

    Exit 3, with close matches, when no asset has that key.
    """
    from onering_assets.browse import show_asset

    try:
        _, defs, instance = load()
        show_asset(out, defs, instance, key)
    except OneRingError as e:
        raise refuse(e) from None


@app.command()
def dev(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 3000,
) -> None:
    """Start the Dagster UI (and daemon) on 127.0.0.1."""
    from onering_assets.devserver import command
    from onering_assets.runner import instance_for

    require_free_port("127.0.0.1", port, "the Dagster UI")
    instance_for(Settings.from_env())
    err.print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    guard = subprocess.Popen(command(port), env=os.environ.copy())
    try:
        code = guard.wait()
    except KeyboardInterrupt:  # passed on (a SIGINT sent to this process alone too), named
        guard.send_signal(signal.SIGINT)
        code = guard.wait()
    raise typer.Exit(code)
