"""What would stop `onering apply` at a table's build, found by `onering plan` beforehand.

A schema change is a changeset, never implied by an edit (``silver/schema.py``,
``gold/audit.py``):

- Silver: a build refuses a table whose YAML ClickHouse does not hold (a new column, another
  type or key, a new table). Pending changesets run before the build, so for a table that a
  changeset not run yet names (comments aside), what ClickHouse lacks today is a note: the
  changeset may add it; the build checks again after it ran. An environment's plan counts
  the changesets it ran already.
- Gold: the ``column_schema`` check fails when the SQL computes a column no changeset
  declares, or a declared column the SQL no longer computes. This needs no database.

Each stop is one line with the fix the build would print.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from onering_assets.change.sources import Source, table_of
from onering_assets.errors import ChangelogError
from onering_assets.namespaces import building

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from onering_assets.catalog import SqlTable
    from onering_assets.change.plan import Plan
    from onering_assets.changelogs.formatted import Changeset

GOLD_CHANGELOG = "platform/versioning/liquibase/changelog/"


def _declared(source: Source, current: dict[str, Source]) -> SqlTable:
    """The table as declared, its SQL parsed without its upstream's columns.

    Names, types, keys and output columns are all a gate reads (with the columns,
    `silver/flights` takes 0.34 s, without 15 ms); a ``SELECT *`` needs them to name its
    columns.
    """
    table = table_of(source, {})
    if any(c == "*" or c.endswith(".*") for c in table.parsed.output_columns):
        return table_of(source, current)
    return table


def _gated(plan: Plan) -> list[str]:
    """Every table the plan touches, built or only recorded.

    A record's next build checks the store too: a Silver sort key is no data change, but
    ClickHouse cannot change it in place.
    """
    return [t.key for t in plan.tables if t.status != "removed"]


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def _naming(changesets: list[Changeset], name: str) -> list[Changeset]:
    """The changesets whose SQL (comments aside) names ``silver.<name>``, quoted or not."""
    pattern = re.compile(rf"\bsilver[`\"]?\s*\.\s*[`\"]?{re.escape(name)}\b", re.IGNORECASE)
    return [cs for cs in changesets if pattern.search(_COMMENTS.sub(" ", cs.sql))]


def _not_run(client: Client, env: str) -> list[Changeset]:
    """Silver's changesets the build would run first.

    Production's pending ones, less those an environment already ran (``env_ddl``).
    """
    from onering_assets.change.env_ddl import silver_ran
    from onering_assets.silver import ddl

    pending = ddl.pending_changesets(client)
    ran = {} if env == "prod" else silver_ran(client, env)
    return [cs for cs in pending if (cs.id, cs.author, cs.filename) not in ran]


def _silver(
    client: Client, env: str, source: Source, current: dict[str, Source], not_run: list[Changeset]
) -> list[str]:
    from onering_assets.silver import schema

    try:
        with building("" if env == "prod" else env):
            schema.verify(client, _declared(source, current))
    except ChangelogError as e:
        lines = [line.strip().removeprefix("- ") for line in str(e).splitlines()[1:]]
    else:
        return []
    pending = _naming(not_run, source.name)
    if not pending:
        return lines
    labels = ", ".join(f"{cs.label} ({cs.path.name})" for cs in pending)
    return [
        f"note: changeset {labels} has not run: apply runs it before the build, which then"
        " checks again; today ClickHouse differs:",
        *(f"note:   {line}" for line in lines),
    ]


def _gold(source: Source, current: dict[str, Source]) -> list[str]:
    table = _declared(source, current)
    declared = {c.name for c in table.columns}
    computed = list(table.parsed.output_columns)
    if not declared:
        return [
            f"no changeset creates gold.{table.name}: add one under {GOLD_CHANGELOG}"
            f" (CREATE TABLE gold.{table.name} (…))"
        ]
    lines = [
        f"the SQL computes {c}, which no changeset of gold.{table.name} declares"
        f" (a new changeset: ALTER TABLE gold.{table.name} ADD COLUMN {c} <postgres type>)"
        for c in computed
        if c not in declared
    ]
    lines += [
        f"gold.{table.name} declares {c}, which the SQL does not compute"
        f" (compute it, or a new changeset: ALTER TABLE gold.{table.name} DROP COLUMN {c})"
        for c in sorted(declared - set(computed))
    ]
    return lines


def stops(
    plan: Plan, current: dict[str, Source], client: Client | None, env: str
) -> dict[str, list[str]]:
    """Per table the plan builds: why its build would stop (a ``note:`` line does not stop it).

    ``client`` is None when Silver's store was never created: the first apply creates it
    from the changelog, so Silver is not checked.
    """
    found: dict[str, list[str]] = {}
    not_run: list[Changeset] | None = None  # Silver's pending changesets, read once
    for key in _gated(plan):
        source = current.get(key)
        if source is None or source.layer not in ("silver", "gold"):
            continue
        try:
            if source.layer == "gold":
                lines = _gold(source, current)
            elif client is None:
                continue
            else:
                if not_run is None:
                    not_run = _not_run(client, env)
                lines = _silver(client, env, source, current, not_run)
        except ChangelogError as e:  # e.g. an applied changeset was edited
            lines = [str(e).splitlines()[0]]
        except Exception as e:  # its SQL cannot be read this way: the build will say more
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            lines = [f"note: cannot check its columns beforehand ({first}); the build checks"]
        if lines:
            found[key] = lines
    return found
