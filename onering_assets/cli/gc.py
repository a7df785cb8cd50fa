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
        float,
        typer.Option(
            help="Delete quarantined batches, and rejected rows kept from failed Silver builds, "
            "older than this many days."
        ),
    ] = Retention.quarantine_days,
) -> None:
    """Delete old Dagster runs (and their events), quarantined batches and failed-build rejects.

    Each environment's runs (its own Dagster instance) are pruned alike.
    """
    import contextlib

    from onering_assets.definitions import resources_for
    from onering_assets.resources import ClickHouseResource, LakeResource
    from onering_assets.retention import collect

    if keep_runs < 0 or quarantine_days < 0:
        raise fail("--keep-runs and --quarantine-days must not be negative.", 2)
    try:
        settings, defs, instance = load()
        resources = resources_for(settings)
        lake, ch = resources["lake"], resources["clickhouse"]
        assert isinstance(lake, LakeResource) and isinstance(ch, ClickHouseResource)
        retention = Retention(keep_runs, quarantine_days)
        with contextlib.ExitStack() as stack:
            # An embedded store that was never created is not opened (that would create it).
            fresh = ch.data_dir is not None and not ch.data_dir.exists()
            client = None if fresh else stack.enter_context(ch.session())
            done = collect(instance, defs, lake, retention, client, settings)
    except OneRingError as e:
        raise fail(str(e)) from None
    out.print(
        f"deleted {len(done.runs_deleted)} run(s) ({done.runs_pinned} kept for the latest "
        f"state), {len(done.quarantine_deleted)} quarantined batch(es) and the rejects of "
        f"{len(done.evidence_deleted)} failed Silver build(s)",
        highlight=False,
    )
    for env, runs in done.env_runs_deleted.items():
        out.print(f"environment {env}: deleted {len(runs)} run(s)", highlight=False)
