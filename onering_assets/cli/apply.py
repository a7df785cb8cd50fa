"""`onering apply`: run the plan through the normal write-audit-publish runs."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import typer

from onering_assets.cli.common import app, err, fail, out, refuse
from onering_assets.cli.plan import (
    EnvOption,
    _clickhouse,
    another_connection,
    compute_plan,
    print_plan,
)
from onering_assets.errors import OneRingError
from onering_assets.namespaces import ENV_TAG
from onering_assets.settings import Settings

if TYPE_CHECKING:
    from onering_assets.change.plan import Plan, TablePlan

APPLY_HELP = """Run the plan: rebuild exactly its partitions through the normal write-audit-publish
runs (Silver first, then Gold), re-audit tables whose checks changed, and record the rest.
A plan naming a build that would stop ("apply would stop": a changeset missing) applies
nothing. The planned tables' SQL unit tests run first (`onering test`); a failing one stops
apply before anything runs (--skip-tests skips them). --env NAME builds into that environment
(created from production first if new); `onering env promote NAME` then publishes it.

\b
Exit codes: 0 applied (the plan is then empty); 1 the plan names a stop, or a unit test,
run or re-audit failed
(what did not run stays in the plan; `onering assets show KEY` shows production's latest
run: an environment's runs are kept in its own Dagster instance).
"""


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
        _finish_stopped_promotions(settings)
        plan = compute_plan(settings, env)
        print_plan(plan)
        if plan.empty:
            return
        if plan.stopped:
            raise fail(
                f"the plan says apply would stop at {', '.join(plan.stopped)} (above): nothing "
                "was applied. Fix what each line names (a changeset to add, run first by "
                "apply), then apply."
            )
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


def _finish_stopped_promotions(settings: Settings) -> None:
    """Finish what a killed `onering env promote` left, before planning against production."""
    from onering_assets.change.promote_events import finish_and_report
    from onering_assets.cli.env import gold_connection, print_finished

    with _clickhouse(settings) as client, gold_connection(settings) as conn:
        if client is not None:
            print_finished(*finish_and_report(settings, client, conn))


def _features(run) -> list[tuple[str, str]]:
    return [tuple(k.split("/", 1)) for k in run.keys if k.startswith("features/")]  # type: ignore[misc]


class _Steps:
    """What apply does, through the runner and the store."""

    def __init__(self, settings: Settings, env: str) -> None:
        self.settings, self.env = settings, env
        self._loaded: tuple | None = None
        self.tags = {} if env == "prod" else {ENV_TAG: env}

    def prepare(self) -> None:
        """Create the environment from production if new."""
        from onering_assets.change import envs
        from onering_assets.cli.env import gold_connection, remove_leftovers

        with _clickhouse(self.settings) as client, gold_connection(self.settings) as conn:
            if client is None:
                return
            if self.env != "prod" and self.env in envs.environments(client):
                envs.check_complete(client, self.env)
            elif self.env != "prod":
                more = functools.partial(another_connection, self.settings)
                made = envs.create(client, conn, self.env, more)
                remove_leftovers(self.settings, self.env)
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
