"""Which checks each layer attaches, whether they block publication, and what they mean."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dagster as dg

from onering_assets.catalog import BronzeTable, SqlTable
from onering_assets.change.datadiff import limit_of
from onering_assets.checks import names
from onering_assets.checks.ge import suite_path
from onering_assets.checks.outcome import Outcome


@dataclass(frozen=True)
class CheckDecl:
    name: str
    blocking: bool
    description: str


def bronze_checks(table: BronzeTable) -> list[CheckDecl]:
    decls = [
        CheckDecl(names.REQUIRED_COLUMNS, True, "Every declared source column is present."),
        CheckDecl(names.NOT_EMPTY, True, "Each ingested partition has at least one row."),
        CheckDecl(
            names.MALFORMED_LINES,
            False,
            "Lines of the landed file that cannot be rows (quarantined with line, reason, bytes).",
        ),
    ]
    if table.partitioned:
        decls.append(
            CheckDecl(
                names.UNASSIGNED_ROWS,
                False,
                "Rows with no valid year/month (quarantined, not ingested).",
            )
        )
    if table.ge_suite and suite_path(table.ge_suite):
        decls.append(CheckDecl(names.GE_SUITE, True, f"Great Expectations suite {table.ge_suite}."))
    return decls


def _suite_decl(table: SqlTable) -> list[CheckDecl]:
    if table.ge_suite and suite_path(table.ge_suite):
        return [CheckDecl(names.GE_SUITE, True, f"Great Expectations suite {table.ge_suite}.")]
    return []


def silver_checks(table: SqlTable) -> list[CheckDecl]:
    decls = [
        CheckDecl(
            names.COLUMN_SCHEMA, True, "The table's columns and types match the declaration."
        ),
        CheckDecl(names.NOT_EMPTY, True, "Each published partition has at least one row."),
        CheckDecl(names.KEY_NOT_NULL, True, f"No null or empty key ({', '.join(table.key)})."),
        CheckDecl(names.KEY_UNIQUE, True, f"The key ({', '.join(table.key)}) is unique."),
        CheckDecl(
            names.RECONCILIATION, True, "Per partition, Bronze rows = Silver rows + rejected rows."
        ),
        CheckDecl(
            names.REJECT_RATE,
            True,
            f"At most {table.max_reject_pct:g}% of Bronze rows are rejected.",
        ),
    ]
    if table.checks.get("not_null") or table.checks.get("accepted_values"):
        decls.append(
            CheckDecl(
                names.ACCEPTED_VALUES, True, "Declared not-null columns and accepted values hold."
            )
        )
    if table.ranges:
        decls.append(CheckDecl(names.VALUE_RANGES, True, _ranges_description(table)))
    return decls + _diff_decl(table) + _suite_decl(table)


def _diff_decl(table: SqlTable) -> list[CheckDecl]:
    limit = limit_of(table.checks)
    if limit is None:
        return []
    text = f"A rebuild adds, removes or changes at most {limit:g}% of the published rows"
    return [CheckDecl(names.DATA_DIFF, True, f"{text} it replaces (data diff by key).")]


def _ranges_description(table: SqlTable) -> str:
    bounds = ", ".join(f"{c} {lo:g}..{hi:g}" for c, (lo, hi) in table.ranges.items())
    return f"Every value lies in its declared physical range ({bounds})."


def gold_checks(table: SqlTable) -> list[CheckDecl]:
    decls = [
        CheckDecl(names.COLUMN_SCHEMA, True, "Computed columns match the Liquibase DDL."),
        CheckDecl(names.NOT_EMPTY, True, "The computed mart has rows."),
        CheckDecl(names.KEY_UNIQUE, True, f"The key ({', '.join(table.key)}) is unique."),
    ]
    # Imported here: onering_assets.gold imports this module while it loads.
    from onering_assets.gold.reconcile import Reconciliation

    recon = Reconciliation.of(table)
    if recon is not None:
        decls.append(
            CheckDecl(
                names.RECONCILIATION,
                True,
                f"{recon.describe()}, group by group: an independent count, not the mart's SQL.",
            )
        )
    return decls + _diff_decl(table) + _suite_decl(table)


def to_specs(key: dg.AssetKey, decls: Iterable[CheckDecl]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(d.name, asset=key, blocking=d.blocking, description=d.description)
        for d in decls
    ]


def emit(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    decls: list[CheckDecl],
    outcomes: list[Outcome],
) -> Iterator[dg.AssetCheckResult]:
    """Yield a result for every selected check; log each failure with its reason."""
    blocking = {d.name: d.blocking for d in decls}
    for outcome in outcomes:
        if dg.AssetCheckKey(key, outcome.name) not in context.selected_asset_check_keys:
            continue
        if not outcome.passed:
            level = "error" if blocking[outcome.name] else "warning"
            getattr(context.log, level)(
                f"check {key.to_user_string()}:{outcome.name} failed: {outcome.summary}"
            )
        yield outcome.to_result(key, blocking=blocking[outcome.name])


def blocking_failures(decls: list[CheckDecl], outcomes: list[Outcome]) -> list[Outcome]:
    blocking = {d.name for d in decls if d.blocking}
    return [o for o in outcomes if not o.passed and o.name in blocking]
