"""`onering gc`: prune run history and old quarantine so local state stays bounded."""

from __future__ import annotations

from typing import Annotated

import typer

from onering_assets.cli.common import app, fail, load, out
from onering_assets.errors import OneRingError
from onering_assets.retention import Retention


@app.command()
def gc(
    keep_runs: Annotated[
        int, typer.Option(help="Newest Dagster runs to keep (runs holding the latest state stay).")
    ] = Retention.keep_runs,
    quarantine_days: Annotated[
        float, typer.Option(help="Delete quarantined batches older than this many days.")
    ] = Retention.quarantine_days,
) -> None:
    """Delete old Dagster runs (and their events) and old quarantined batches."""
    from onering_assets.definitions import resources_for
    from onering_assets.resources import LakeResource
    from onering_assets.retention import collect

    if keep_runs < 0 or quarantine_days < 0:
        raise fail("--keep-runs and --quarantine-days must not be negative.", 2)
    try:
        settings, defs, instance = load()
        lake = resources_for(settings)["lake"]
        assert isinstance(lake, LakeResource)
        done = collect(instance, defs, lake, Retention(keep_runs, quarantine_days))
    except OneRingError as e:
        raise fail(str(e)) from None
    out.print(
        f"deleted {len(done.runs_deleted)} run(s) ({done.runs_pinned} kept for the latest "
        f"state) and {len(done.quarantine_deleted)} quarantined batch(es)",
        highlight=False,
    )
