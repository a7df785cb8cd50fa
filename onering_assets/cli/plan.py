"""`onering plan` and `onering apply`: what a change to the declared tables does, then do it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from onering_assets.cli.common import app, err, fail, out, refuse
from onering_assets.errors import OneRingError
from onering_assets.namespaces import ENV_TAG
from onering_assets.settings import PLATFORM_DIR, Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from onering_assets.change.plan import Plan, TablePlan

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

APPLY_HELP = """Run the plan: rebuild exactly its partitions through the normal write-audit-publish
runs (Silver first, then Gold), re-audit tables whose checks changed, and record the rest.
The planned tables' SQL unit tests run first (`onering test`); a failing one stops apply
before anything runs (--skip-tests skips them). --env NAME builds into that environment
(created from production first if new); `onering env promote NAME` then publishes it.

\b
Exit codes: 0 applied (the plan is then empty); 1 a unit test, run or re-audit failed
(what did not run stays in the plan; `onering assets show KEY` shows production's latest
run: an environment's runs are kept in its own Dagster instance).
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


EnvOption = Annotated[
    str,
    typer.Option("--env", help="An environment (see `onering env`); production by default."),
]


def compute_plan(settings: Settings, env: str = "prod") -> Plan:
    """The plan against ``env``'s records (production's, for an environment not created yet).

    Feature views are built in production only: an environment's plan leaves them out.
    """
    from onering_assets.change import envs, state
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
            return make_plan(current, {}, lambda d: {}, bronze_months, env)
        exists = env == state.PROD or env in envs.environments(client)
        deployed = state.deployed(client, env if exists else state.PROD)
        deployed = {
            k: v for k, v in deployed.items() if k in current or k.split("/")[0] != "features"
        }
        _warn_stopped_promotions(client)
        return make_plan(current, deployed, lambda d: state.sources(client, d), bronze_months, env)


def _warn_stopped_promotions(client: Client) -> None:
    from onering_assets import journal
    from onering_assets.change.envs import PROMOTE

    for entry in journal.ClickHouseJournal(client).pending(PROMOTE):
        err.print(
            f"warning: a promotion of {entry.table} stopped half-way; "
            f"`onering env promote {entry.table}` finishes it.",
            highlight=False,
        )


def _months(parts: list[str]) -> str:
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


def _lines(table: TablePlan) -> list[str]:
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
        lines.append(f"    {verb}: {_months(table.rebuild)}")
    if table.audit:
        lines.append("    re-audit: its checks on what is published")
    elif table.record and not table.rebuild:
        lines.append("    record only: no data changes")
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
            for line in _lines(table):
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


def _unit_tests_pass(plan: Plan) -> bool:
    """`onering test` on the planned Silver and Gold tables.

    In a process of its own: it opens a scratch chDB, and this process the project's.
    """
    import subprocess
    import sys

    keys = [t.key for t in plan.tables if t.rebuild and t.key.split("/")[0] in ("silver", "gold")]
    if not keys:
        return True
    select = " or ".join(f'key:"{k}"' for k in keys)
    done = subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "test", "--select", select],
        capture_output=True,
        text=True,
    )
    if done.returncode in (0, 3):  # passed, or no table of the plan has tests
        return True
    err.print(done.stdout + done.stderr, highlight=False, markup=False)
    return False


@app.command("apply", help=APPLY_HELP)
def apply_command(
    env: EnvOption = "prod",
    tests: Annotated[
        bool, typer.Option("--tests/--skip-tests", help="Run the planned tables' unit tests first.")
    ] = True,
) -> None:
    from onering_assets.change.apply import apply

    try:
        settings = Settings.from_env()
        plan = compute_plan(settings, env)
        print_plan(plan)
        if plan.empty:
            return
        if tests and not _unit_tests_pass(plan):
            raise fail("the unit tests of a planned table fail (above): nothing was applied.")
        steps = _Steps(settings, env)
        steps.prepare()
        outcome = apply(plan, steps.execute, steps.audit, steps.record, steps.forget)
        left = compute_plan(settings, env)
    except OneRingError as e:
        raise refuse(e) from None
    for key in outcome.recorded:
        err.print(f"recorded {key} (no rebuild)", highlight=False)
    for key in outcome.forgotten:
        err.print(f"{key} is no longer declared: forgotten by plan, its data kept", highlight=False)
    again = "onering plan" if env == "prod" else f"onering plan --env {env}"
    if not outcome.success:
        raise fail(f"apply stopped; {len(left.tables)} table(s) still planned: `{again}`.")
    if not left.empty:
        raise fail(f"applied, but {len(left.tables)} table(s) are still planned: `{again}`.")
    if env == "prod":
        out.print("Applied: the plan is now empty.")
    else:
        out.print(
            f"Applied: the plan is now empty. In {env} until `onering env promote {env}` "
            "makes it production."
        )


def _features(run) -> list[tuple[str, str]]:
    return [tuple(k.split("/", 1)) for k in run.keys if k.startswith("features/")]  # type: ignore[misc]


class _Steps:
    """What apply does, through the runner and the store."""

    def __init__(self, settings: Settings, env: str) -> None:
        self.settings, self.env = settings, env
        self._loaded: tuple | None = None
        self.tags = {} if env == "prod" else {ENV_TAG: env}

    def prepare(self) -> None:
        """Finish a stopped promotion; create the environment from production if new."""
        from onering_assets.change import envs
        from onering_assets.cli.env import gold_connection

        with _clickhouse(self.settings) as client, gold_connection(self.settings) as conn:
            if client is None:
                return
            envs.finish_promotions(client, conn)
            if self.env != "prod" and self.env not in envs.environments(client):
                made = envs.create(client, conn, self.env)
                err.print(f"created environment {self.env} ({made.tables} Silver tables shared)")

    def _defs(self):
        if self._loaded is None:
            from onering_assets.cli.common import load

            settings, defs, instance = load()
            if self.env != "prod":  # an environment's runs: its own Dagster instance
                from onering_assets.runner import instance_for

                instance = instance_for(settings, self.env)
            self._loaded = defs, instance
        return self._loaded

    def execute(self, run) -> bool:
        import dagster as dg

        from onering_assets.runner import execute

        defs, instance = self._defs()
        err.print(f"applying: {run.describe()}", highlight=False, markup=False)
        keys = {dg.AssetKey(k.split("/")) for k in run.keys}
        # A feature view's rows, then the view itself (Feast's registry and online store).
        keys |= {dg.AssetKey(["features", k.removesuffix("_source")]) for _, k in _features(run)}
        summary = execute(
            defs, instance, assets=keys, first=run.first, last=run.last, tags=self.tags
        )
        if not summary.success:
            from onering_assets.cli.report import print_summary

            print_summary(summary, "run")
        return summary.success

    def audit(self, table: TablePlan) -> bool:
        import dagster as dg

        from onering_assets.change.apply import ranges
        from onering_assets.runner import check_keys, execute

        defs, instance = self._defs()
        checks = check_keys(defs, {dg.AssetKey(table.key.split("/"))})
        spans = ranges([p for p in table.record if p]) or [(None, None)]
        err.print(f"re-auditing {table.key}", highlight=False)
        return all(
            execute(defs, instance, checks=checks, first=a, last=b, tags=self.tags).success
            for a, b in spans
        )

    def record(self, table: TablePlan) -> None:
        from onering_assets.catalog import load_catalog
        from onering_assets.change import state

        layer, name = table.key.split("/", 1)
        parts = None if table.record == [state.WHOLE] else table.record
        with _clickhouse(self.settings) as client:
            if client is not None:
                if layer == "features":
                    from onering_assets.features.views import load_views

                    declared = load_views().view(name.removesuffix("_source"))
                else:
                    declared = load_catalog().sql_table(layer, name)
                sources = state.publish_sources(declared)
                state.record(client, *sources, parts, "onering-apply", self.env)

    def forget(self, key: str) -> None:
        from onering_assets.change import state

        with _clickhouse(self.settings) as client:
            if client is not None:
                state.forget(client, key, self.env)
