"""`onering env create | list | drop`: zero-copy environments of Silver and Gold."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from onering_assets.change.promote_events import finish_and_report, tell
from onering_assets.cli.airflow import env_dags_dir
from onering_assets.cli.common import app, err, fail, out, refuse
from onering_assets.cli.plan import _clickhouse, another_connection
from onering_assets.errors import OneRingError
from onering_assets.settings import Settings

if TYPE_CHECKING:
    import psycopg

env_app = typer.Typer(
    help="Zero-copy environments: production's Silver and Gold under another name.",
    no_args_is_help=True,
)
app.add_typer(env_app, name="env")
Env = Annotated[str, typer.Argument(help="The environment's name, e.g. dev.")]


@contextmanager
def gold_connection(settings: Settings) -> Iterator[psycopg.Connection | None]:
    """Gold's Postgres, or None when Gold was never built here (never created)."""
    if settings.profile == "local" and not (settings.postgres_dir / "PG_VERSION").exists():
        yield None
        return
    from onering_assets.definitions import resources_for

    with resources_for(settings)["postgres"].connect() as conn:  # type: ignore[attr-defined]
        yield conn


def _locks(settings: Settings):
    """The locks production's migrations take (a promotion may migrate production first)."""
    from onering_assets.definitions import resources_for

    return resources_for(settings)["clickhouse"].locks()  # type: ignore[attr-defined]


@env_app.command("create")
def create(env: Env) -> None:
    """Create ENV from production without copying data.

    Silver's parts are hard-linked into silver__ENV, Gold's marts are copied into
    gold__ENV (they are small); production is only read.
    """
    from onering_assets.change import envs

    try:
        envs.check_name(env)
        settings = Settings.from_env()
        with _clickhouse(settings) as client:
            if client is None:
                raise fail("Nothing is published here yet: run `make demo` first.", 1)
            with gold_connection(settings) as conn:
                made = envs.create(
                    client, conn, env, functools.partial(another_connection, settings)
                )
    except OneRingError as e:
        raise refuse(e) from None
    remove_leftovers(settings, env)
    out.print(
        f"Created {env} in {made.seconds:.2f} s: {made.tables} Silver tables with their rejects "
        f"({made.parts} partitions hard-linked) in {envs.silver_database(env)}, "
        f"{made.marts} Gold marts copied into {envs.gold_schema(env)}.",
        highlight=False,
    )


@env_app.command("list")
def list_envs(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """The environments: when each was created, what it changed since.

    Each table it built or recorded since it was created, with the partitions, is what
    `onering env promote` would make production. An environment whose creation was stopped
    is listed as incomplete: drop it.
    """
    from onering_assets.change import envs
    from onering_assets.cli.plan import months_text

    with _clickhouse(Settings.from_env()) as client:
        found = envs.summaries(client) if client is not None else []
    if as_json:
        body = [
            {"env": s.env, "created": s.created, "complete": s.complete, "differs": s.differs}
            for s in found
        ]
        out.print_json(json.dumps(body))
        return
    for s in found:
        if not s.complete:
            line = f"{s.env}  incomplete: its creation was stopped; `onering env drop {s.env}`"
            out.print(line, highlight=False, markup=False, soft_wrap=True)
            continue
        noun = "table" if len(s.differs) == 1 else "tables"
        held = "; ".join(f"{key} {months_text(parts)}" for key, parts in sorted(s.differs.items()))
        what = "changed nothing since"
        if s.differs:
            what = f"changed {len(s.differs)} {noun} since (built or recorded): {held}"
        line = f"{s.env}  created {s.created} UTC  {what}"
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if not found:
        err.print("No environments: `onering env create NAME`.")


@env_app.command("drop")
def drop(env: Env) -> None:
    """Remove ENV's namespaces, records, runs and exported Airflow DAGs; production is not touched.

    What is left of an environment the stores no longer hold (its runs, its DAG folder) is
    removed too.
    """
    from onering_assets.change import envs

    try:
        envs.check_name(env)
        settings = Settings.from_env()
        left: list[str] = []
        with _clickhouse(settings) as client:
            exists = client is not None and env in envs.environments(client)
            if client is not None:
                with gold_connection(settings) as conn:
                    if exists:  # a stopped promotion reads its tables (and its runs)
                        print_finished(*finish_and_report(settings, client, conn))
                    else:  # what a drop killed half-way left
                        left = envs.leftovers(client, conn, env)
                    if exists or left:
                        envs.drop(client, conn, env)
    except OneRingError as e:
        raise refuse(e) from None
    left += remove_leftovers(settings, env)
    if not exists and not left:
        raise fail(f"No environment {env!r}: see `onering env list`.", 3)
    out.print(f"Dropped {env}." if exists else f"No environment {env!r} in the stores.")
    for what in left:
        out.print(f"Removed {what}.", highlight=False)


def remove_leftovers(settings: Settings, env: str) -> list[str]:
    """Remove ENV's Dagster runs (their own instance) and exported DAGs.

    After a drop they would only fail; before a create, be taken for the new one's.
    """
    from onering_assets.instances import env_home

    removed = []
    for what, folder in (
        ("its Dagster runs", env_home(settings, env).parent),
        ("its Airflow DAGs", env_dags_dir(env)),
    ):
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(f"{what} ({folder})")
    return removed


def print_finished(finished: dict[str, dict[str, list[str]]], warnings: list[str]) -> None:
    """Say which promotions a kill had stopped were finished now (and any report that failed)."""
    for env, tables in sorted(finished.items()):
        err.print(
            f"finished the promotion of {env} a kill had stopped: {', '.join(sorted(tables))}",
            highlight=False,
        )
    for warning in warnings:
        err.print(warning, highlight=False, markup=False)


@env_app.command("promote")
def promote(env: Env) -> None:
    """Make what ENV built production: every changed partition of every table, or none.

    Changesets ENV ran that production has pending (a new column) are applied to
    production first, as a production build would apply them.

    A promotion killed half-way is finished by the next `onering env promote` or `onering
    apply` (from the environment's tables, which stay until `onering env drop`).
    """
    from onering_assets.change import envs
    from onering_assets.change import promote as promotion
    from onering_assets.definitions import build_definitions

    try:
        envs.check_name(env)
        settings = Settings.from_env()
        defs = build_definitions(settings)  # before the swaps: the report follows them at once
        with _clickhouse(settings) as client, gold_connection(settings) as conn:
            if client is None or env not in envs.environments(client):
                raise fail(f"No environment {env!r}: see `onering env list`.", 3)
            finished, warnings = finish_and_report(settings, client, conn, defs)
            print_finished({k: v for k, v in finished.items() if k != env}, warnings)
            done = promotion.promote(client, conn, env, _locks(settings))
            if done and (warning := tell(settings, client, env, done, defs)):
                err.print(warning, highlight=False, markup=False)
    except OneRingError as e:
        raise refuse(e) from None
    for key, parts in finished.get(env, {}).items():
        done[key] = sorted(set(done.get(key, [])) | set(parts))
    if not done:
        out.print(f"Nothing to promote: {env} built nothing production lacks.")
        return
    for key, parts in done.items():
        shown = "the whole table" if parts == [""] else ", ".join(parts)
        out.print(f"promoted {key}: {shown}", highlight=False)
    out.print(f"Promoted {env}: production now has what it built.")
