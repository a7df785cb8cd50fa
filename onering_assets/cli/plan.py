"""`onering plan` and `onering apply`: what a change to the declared tables does, then do it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from onering_assets.cli.common import app, err, fail, out, refuse
from onering_assets.errors import OneRingError
from onering_assets.settings import PLATFORM_DIR, Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from onering_assets.change.plan import Plan, TablePlan
    from onering_assets.resources.clickhouse import Statements

PLAN_HELP = """Compare the declared Silver and Gold tables with what is published.

\b
Per table: added, removed, changed (which columns, whether the rows it keeps change),
affected (a column it reads upstream changed), checks (its checks changed: re-audit) or
record (nothing to rebuild: formatting, or a change nobody downstream reads); for a change,
whether it is breaking for each downstream table and which of its columns; and the
partitions `onering apply` would rebuild. Nothing is run or written. Exit code 0; with
--check, 1 when there is anything to apply (a CI gate: the declarations match what is
published, or not).

\b
--diff also stages each planned rebuild as a run would (Silver, then Gold from the staged
Silver) and prints how its rows would differ from what is published, by key: rows added,
removed and changed, and per column the changed values and the shift of nulls, mean, min
and max. Staging is dropped (Gold's rolled back) afterwards; nothing is published.
"""

MARKS = {"added": "+", "removed": "-", "changed": "~", "affected": "~", "checks": "?"}


@contextmanager
def _clickhouse(settings: Settings) -> Iterator[Client | None]:
    """Silver's store, or None when nothing was ever materialized here (never created)."""
    if settings.profile == "local" and not settings.clickhouse_dir.exists():
        yield None
        return
    from onering_assets.definitions import resources_for

    resource = resources_for(settings)["clickhouse"]
    try:
        yield resource.get_client()  # type: ignore[attr-defined]
    finally:
        resource.close()  # type: ignore[attr-defined]


def another_connection(settings: Settings) -> Statements:
    """One more connection to Silver's store beside the client `_clickhouse` holds."""
    from onering_assets.definitions import resources_for

    return resources_for(settings)["clickhouse"].another_connection()  # type: ignore[attr-defined]


EnvOption = Annotated[
    str,
    typer.Option("--env", help="An environment (see `onering env`); production by default."),
]


def compute_plan(settings: Settings, env: str = "prod") -> Plan:
    """The plan against ``env``'s records (production's, for an environment not created yet).

    Feature views are built in production only: an environment's plan leaves them out.
    """
    from onering_assets.change import envs, gates, state
    from onering_assets.change.plan import make_plan
    from onering_assets.change.sources import project_sources
    from onering_assets.definitions import resources_for
    from onering_assets.partitions import MONTHLY

    lake = resources_for(settings)["lake"]
    current = project_sources(PLATFORM_DIR)

    def bronze_months(name: str) -> list[str]:
        keys = MONTHLY.get_partition_keys()
        return [m for m in keys if lake.has_rows_for("bronze", name, m)]  # type: ignore[attr-defined]

    if env != state.PROD:
        envs.check_name(env)
        current = {k: s for k, s in current.items() if s.layer != "features"}
    with _clickhouse(settings) as client:
        if client is None:
            plan = make_plan(current, {}, lambda d: {}, bronze_months, env)
            plan.stops = gates.stops(plan, current, None, env)
            return plan
        exists = env == state.PROD or env in envs.environments(client)
        if exists and env != state.PROD:
            envs.check_complete(client, env)
        deployed = state.deployed(client, env if exists else state.PROD)
        deployed = {
            k: v for k, v in deployed.items() if k in current or k.split("/")[0] != "features"
        }
        _warn_stopped_promotions(client)
        plan = make_plan(current, deployed, lambda d: state.sources(client, d), bronze_months, env)
        plan.stops = gates.stops(plan, current, client, env if exists else state.PROD)
        return plan


def _warn_stopped_promotions(client: Client) -> None:
    from onering_assets import journal
    from onering_assets.change.promote import PROMOTE

    for entry in journal.ClickHouseJournal(client).pending(PROMOTE):
        err.print(
            f"warning: a promotion of {entry.table} stopped half-way; "
            f"`onering env promote {entry.table}` finishes it.",
            highlight=False,
        )


def months_text(parts: list[str]) -> str:
    from onering_assets.change.apply import ranges

    if parts == [""]:
        return "the whole table"
    spans = [a if a == b else f"{a}..{b}" for a, b in ranges(parts)]
    noun = "month" if len(parts) == 1 else "months"
    return f"{', '.join(spans)} ({len(parts)} {noun})"


def _head(table: TablePlan) -> str:
    change = table.change
    head = f"{MARKS.get(table.status, ' ')} {table.key}  {table.status}"
    if table.status == "removed":
        return head + " (its data is kept)"
    if change is None:
        return head
    if table.status == "added":
        return head + f": {len(change.added)} columns"
    named = (("", change.changed), ("new ", change.added), ("removed ", change.removed))
    parts = [f"{what}{', '.join(cols)}" for what, cols in named if cols]
    if change.shape_changed:
        parts.append("which rows it keeps or how they are keyed")
    if change.checks_changed:
        parts.append("its checks" if table.status != "checks" else "changed")
    return head + f": {'; '.join(parts) or 'formatting only'}"


def _lines(table: TablePlan, stops: list[str]) -> list[str]:
    lines = [_head(table)]
    for upstream, columns in table.because.items():
        lines.append(f"    because {upstream} changed: {', '.join(columns)}")
    for impact in sorted(table.downstream, key=lambda i: i.key):
        if impact.breaking:
            lines.append(f"    breaking for {impact.key}: {', '.join(impact.columns)}")
        else:
            lines.append(f"    non-breaking for {impact.key}")
    if table.rebuild:
        verb = "build" if table.status == "added" else "rebuild"
        lines.append(f"    {verb}: {months_text(table.rebuild)}")
    if table.audit:
        lines.append("    re-audit: its checks on what is published")
    elif table.record and not table.rebuild:
        lines.append("    record only: no data changes")
    for stop in stops:
        lines.append(f"    {stop}" if stop.startswith("note:") else f"    apply would stop: {stop}")
    return lines


def print_plan(plan: Plan) -> None:
    if plan.empty:
        out.print(f"No changes: the {plan.declared} declared tables match what is published.")
        return
    noun = "table" if len(plan.tables) == 1 else "tables"
    out.print(f"Plan: {len(plan.tables)} {noun} of {plan.declared} declared", highlight=False)
    # Readers of a change they do not read: recorded as built from it, in one line.
    quiet = [t.key for t in plan.tables if t.status == "record" and t.change is None]
    for table in plan.tables:
        if table.key not in quiet:
            for line in _lines(table, plan.stops.get(table.key, [])):
                out.print(line, highlight=False, markup=False, soft_wrap=True)
    if quiet:
        out.print(
            f"  {len(quiet)} reader(s) of a change they do not read, recorded without a "
            f"rebuild: {', '.join(quiet)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command("plan", help=PLAN_HELP)
def plan_command(
    env: EnvOption = "prod",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    diff: Annotated[
        bool,
        typer.Option("--diff", help="Also stage each rebuild and diff it (nothing published)."),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when there is anything to apply (a CI gate).")
    ] = False,
) -> None:
    try:
        settings = Settings.from_env()
        plan = compute_plan(settings, env)
        if diff and env != "prod":
            raise fail("--diff compares with production; run it without --env.", 2)
        previews = _previews(settings, plan) if diff else []
    except OneRingError as e:
        raise refuse(e) from None
    if as_json:
        body = plan.to_json()
        if diff:
            body["diffs"] = {p.key: p.to_json() for p in previews}
        out.print_json(json.dumps(body))
    else:
        print_plan(plan)
        _print_previews(previews)
    if check and not plan.empty:
        raise typer.Exit(1)


def _print_previews(previews: list) -> None:
    for p in previews:
        text = f"diff {p.key}: {p.diff.summary() if p.diff else p.note}"
        out.print(text, highlight=False, markup=False, soft_wrap=True)
        check = p.limit_check()
        if check is not None and not check.passed:
            warning = f"  apply would stop here: check data_diff fails: {check.summary}"
            out.print(warning, highlight=False, markup=False, soft_wrap=True)
        for name, column in (p.diff.to_json()["columns"] if p.diff else {}).items():
            old, new = column["old"], column["new"]
            shift = ", ".join(f"{s} {old[s]} -> {new[s]}" for s in old if old[s] != new[s])
            line = f"    {name}: {column['changed']} changed" + (f"; {shift}" if shift else "")
            out.print(line, highlight=False, markup=False, soft_wrap=True)


def _previews(settings: Settings, plan: Plan) -> list:
    from onering_assets.change.preview import preview
    from onering_assets.definitions import resources_for

    if plan.empty or (settings.profile == "local" and not settings.clickhouse_dir.exists()):
        return []
    return preview(plan, resources_for(settings))
