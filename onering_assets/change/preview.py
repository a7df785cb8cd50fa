"""`onering plan --diff`: stage each planned rebuild and diff it, without publishing anything.

Silver tables are staged exactly as a run stages them (``SilverBuild.stage``, under the
stage lock, named for this preview) and diffed against the published months; a Gold mart is
computed from the staged Silver tables where the plan rebuilds them (from the published ones
elsewhere), staged in a Postgres transaction that is rolled back, and diffed (no changeset
is applied: a table whose columns changed is staged once its changeset ran, else it says why
not, and so does a table that reads one not staged). Every staging
table is dropped at the end, whatever happens. No Dagster run, no materialization, no
publish, no record: what is published is left as it was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from onering_assets.catalog import load_catalog
from onering_assets.change.datadiff import DataDiff, diffed
from onering_assets.change.plan import Plan, TablePlan
from onering_assets.change.state import WHOLE
from onering_assets.checks.outcome import Outcome
from onering_assets.errors import ChangelogError


@dataclass(frozen=True)
class Preview:
    """One planned table's diff, or why there is none."""

    key: str
    diff: DataDiff | None = None
    note: str = ""

    def limit_check(self) -> Outcome | None:
        """The ``data_diff`` check on this diff, if the table declares ``max_moved_pct``.

        What ``apply`` would decide on the same rows.
        """
        layer, name = self.key.split("/", 1)
        if self.diff is None or layer not in ("silver", "gold"):
            return None
        outcomes = diffed(load_catalog().sql_table(layer, name), self.diff)
        return outcomes[0] if outcomes else None

    def to_json(self) -> dict[str, Any]:
        if self.diff is None:
            return {"note": self.note}
        body = self.diff.to_json()
        check = self.limit_check()
        if check is not None:
            body["data_diff_check"] = {"passed": check.passed, "description": check.summary}
        return body


def _new_shape(planned: TablePlan) -> str:
    """Why a table whose columns change is not diffed ("" when they do not)."""
    change = planned.change
    if change is None or change.kind != "changed" or not (change.added or change.removed):
        return ""
    shape = ", ".join([*(f"+{c}" for c in change.added), *(f"-{c}" for c in change.removed)])
    return (
        f"not diffed: its columns change ({shape}), which production's table cannot stage "
        "until the changeset runs (`onering migrate`, then diff again); or build it in an "
        "environment (`onering apply --env dev`) and query it there (`onering sql`, "
        "silver__dev/gold__dev)"
    )


def _holds_declared(layer: str, table: Any, client: Any, pg: Any) -> bool:
    """Whether the published table already has the declared columns (a changeset ran)."""
    if layer == "silver":
        from onering_assets.silver import schema

        try:
            schema.verify(client, table)
        except ChangelogError:
            return False
        return True
    with pg.connect() as conn:
        found = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'gold' AND table_name = %s",
            (table.name,),
        ).fetchall()
    return {str(r[0]) for r in found} == {c.name for c in table.columns}


def preview(plan: Plan, resources: dict[str, Any]) -> list[Preview]:
    """Stage and diff every table the plan rebuilds (Silver, then Gold)."""
    from onering_assets.gold import publish
    from onering_assets.silver.steps import SilverBuild

    catalog = load_catalog()
    ch, lake, pg = resources["clickhouse"], resources["lake"], resources["postgres"]
    client, locks = ch.get_client(), ch.locks()
    run_id = f"plan-diff-{uuid.uuid4().hex[:12]}"
    staged: dict[str, str] = {}
    builds: list[SilverBuild] = []
    found: list[Preview] = []
    unstaged: set[str] = set()  # planned rebuilds that could not be staged
    try:
        for planned in plan.tables:
            if not planned.rebuild or planned.status == "removed":
                continue
            layer, name = planned.key.split("/", 1)
            parts = None if planned.rebuild == [WHOLE] else planned.rebuild
            if layer == "features":
                found.append(Preview(planned.key, note="feature views are not diffed"))
                continue
            table = catalog.sql_table(layer, name)
            note = _new_shape(planned)
            if note and _holds_declared(layer, table, client, pg):
                note = ""
            blind = sorted(k for k in planned.because if k in unstaged)
            if blind and not note:
                note = (
                    f"not diffed: it reads {', '.join(blind)}, which is not staged (see its"
                    " line): computed from what is published, its diff would not be the change's"
                )
            if note:
                unstaged.add(planned.key)
                found.append(Preview(planned.key, note=note))
                continue
            try:
                if layer == "silver":
                    build = SilverBuild(client, table, lake, parts, run_id, locks)
                    builds.append(build)
                    build.stage()
                    staged[name] = build.names.stage
                    found.append(Preview(planned.key, build.diff()))
                    continue
                rows = publish.compute(client, table, parts, staged)
                with pg.connect() as conn:
                    publish.stage(conn, table, rows)
                    found.append(Preview(planned.key, publish.diff(conn, table, parts)))
                    conn.rollback()
            except Exception as err:  # one table's failure is its line, not the preview's end
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                unstaged.add(planned.key)
                found.append(Preview(planned.key, note=f"cannot stage it: {first}"))
    finally:
        for build in builds:
            build.drop()
        ch.close()
    return found
