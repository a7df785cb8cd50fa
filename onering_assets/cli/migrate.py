"""`onering migrate`: apply (or, with --status, list) Gold's and Silver's pending changesets."""

from __future__ import annotations

from typing import Annotated

import typer

from onering_assets.cli.common import app, fail, out, refuse
from onering_assets.errors import OneRingError
from onering_assets.migrations import Migration
from onering_assets.settings import Settings


@app.command()
def migrate(
    status: Annotated[
        bool, typer.Option("--status", help="Only list the pending changesets; apply nothing.")
    ] = False,
) -> None:
    """Apply the pending Liquibase changesets of Gold (Postgres) and Silver (ClickHouse).

    Edited changesets are refused, naming the file; each applied one is recorded in the
    store's databasechangelog as Liquibase records it. A changeset the store refuses stops
    here, exit 1, with the store's message on one line.
    """
    from onering_assets.migrations import migrate as run_migrations

    try:
        for m in run_migrations(Settings.from_env(), apply=not status):
            _say(m, status)
    except OneRingError as e:
        raise refuse(e) from None
    except Exception as e:  # the store refused a changeset: one line, never a traceback
        from onering_assets.query import one_line

        raise fail(one_line(f"a changeset failed: {type(e).__name__}: {e}"), 1) from None


def _say(m: Migration, status: bool) -> None:
    verb = "pending" if status else "applied"
    listed = ", ".join(m.changesets) if m.changesets else "nothing"
    out.print(
        f"{m.store}: {verb} {len(m.changesets)} changeset(s) ({m.history}): {listed}",
        highlight=False,
        soft_wrap=True,
    )
