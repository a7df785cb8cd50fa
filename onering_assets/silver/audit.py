"""Silver checks as SQL pushed down to ClickHouse: vectorized, milliseconds per million rows.

The same audits run on staging (gating publication) and on the published tables (checks
run alone); ``Audited`` names which pair of tables to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from onering_assets.catalog import SqlTable
from onering_assets.checks import names as checks
from onering_assets.checks.outcome import SAMPLE_ROWS, Outcome, not_empty, schema_outcome
from onering_assets.namespaces import silver_db
from onering_assets.ranges import any_out_of_range, out_of_range
from onering_assets.silver.plan import DATABASE, STAGING_NAME, quote, table_columns

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


@dataclass(frozen=True)
class Audited:
    """The table and rejects table to audit, the Bronze source, and the partitions."""

    table: SqlTable
    rows_name: str
    rejects_name: str
    bronze_sql: str
    bronze_params: dict[str, Any]
    partitions: list[str] | None

    @property
    def database(self) -> str:
        """Staging lives in production's database; a published table in the one built."""
        return DATABASE if STAGING_NAME.search(self.rows_name) else silver_db()

    @property
    def rows_table(self) -> str:
        return f"{self.database}.{quote(self.rows_name)}"

    @property
    def rejects_table(self) -> str:
        return f"{self.database}.{quote(self.rejects_name)}"


def _rows(client: Client, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
    return [tuple(r) for r in client.query(sql, parameters=params or {}).result_rows]


def _counts(client: Client, source: str, params: dict[str, Any] | None = None) -> dict[str, int]:
    return {
        p: n
        for p, n in _rows(
            client, f"SELECT _partition, count() FROM {source} GROUP BY _partition", params
        )
    }


def column_schema(client: Client, audited: Audited) -> Outcome:
    """The audited table (staging or published) against the declared columns and types."""
    actual = _rows(
        client,
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}"
        " ORDER BY position",
        {"db": audited.database, "t": audited.rows_name},
    )
    return schema_outcome(
        checks.COLUMN_SCHEMA,
        table_columns(audited.table),
        actual,
        f"{silver_db()}.{audited.table.name}",
    )


def key_not_null(client: Client, audited: Audited) -> Outcome:
    cond = " OR ".join(
        f"isNull({quote(k)}) OR empty(toString({quote(k)}))" for k in audited.table.key
    )
    bad = _rows(client, f"SELECT countIf({cond}) FROM {audited.rows_table}")[0][0]
    sample = (
        _rows(client, f"SELECT * FROM {audited.rows_table} WHERE {cond} LIMIT {SAMPLE_ROWS}")
        if bad
        else []
    )
    return Outcome(
        checks.KEY_NOT_NULL,
        bad == 0,
        f"{bad} rows with a null or empty key" if bad else "no null or empty keys",
        failing=bad,
        sample=sample,
    )


def key_unique(client: Client, audited: Audited) -> Outcome:
    key = ", ".join(quote(k) for k in audited.table.key)
    dupes = _rows(client, f"SELECT count() - uniqExact({key}) FROM {audited.rows_table}")[0][0]
    sample = (
        _rows(
            client,
            f"SELECT {key}, count() AS n FROM {audited.rows_table} GROUP BY {key} "
            f"HAVING n > 1 LIMIT {SAMPLE_ROWS}",
        )
        if dupes
        else []
    )
    return Outcome(
        checks.KEY_UNIQUE,
        dupes == 0,
        f"{dupes} duplicate rows on ({key})" if dupes else f"({key}) is unique",
        failing=dupes,
        sample=sample,
    )


def reconcile(
    bronze: dict[str, int], rows: dict[str, int], rejects: dict[str, int], audited: Audited
) -> list[Outcome]:
    """Reconciliation and reject rate, per partition."""
    partitions = audited.partitions or sorted(bronze)
    off = {
        p or audited.table.name: {
            "bronze": bronze.get(p, 0),
            "silver": rows.get(p, 0),
            "rejects": rejects.get(p, 0),
        }
        for p in partitions
        if bronze.get(p, 0) != rows.get(p, 0) + rejects.get(p, 0)
    }
    total_bronze = sum(bronze.get(p, 0) for p in partitions)
    total_rejects = sum(rejects.get(p, 0) for p in partitions)
    pct = 100.0 * total_rejects / total_bronze if total_bronze else 0.0
    limit = audited.table.max_reject_pct
    meta = {"bronze_rows": total_bronze, "rejected_rows": total_rejects}
    return [
        Outcome(
            checks.RECONCILIATION,
            not off,
            f"{len(off)} partition(s) where bronze != silver + rejects"
            if off
            else f"bronze {total_bronze} = silver {total_bronze - total_rejects} "
            f"+ rejects {total_rejects}",
            failing=len(off),
            sample=[{"partition": k, **v} for k, v in list(off.items())[:SAMPLE_ROWS]],
            metadata=meta,
        ),
        Outcome(
            checks.REJECT_RATE,
            pct <= limit,
            f"{total_rejects} of {total_bronze} rows rejected ({pct:.2f}%, limit {limit:g}%)",
            failing=total_rejects,
            metadata={**meta, "reject_pct": round(pct, 4)},
        ),
    ]


def reject_reasons(client: Client, audited: Audited) -> tuple[dict[str, int], list[tuple]]:
    reasons = dict(
        _rows(
            client,
            f"SELECT _reject_reason, count() FROM {audited.rejects_table} "
            "GROUP BY _reject_reason ORDER BY count() DESC",
        )
    )
    sample = (
        _rows(
            client,
            f"SELECT _partition, _reject_reason, _raw FROM {audited.rejects_table} "
            f"LIMIT {SAMPLE_ROWS}",
        )
        if reasons
        else []
    )
    return reasons, sample


def accepted_values(client: Client, audited: Audited) -> Outcome:
    spec = audited.table.checks
    parts, params = [], {}
    for column in spec.get("not_null", []):
        parts.append((f"{column} is null", f"isNull({quote(column)})"))
    for i, (column, values) in enumerate(spec.get("accepted_values", {}).items()):
        params[f"v{i}"] = [str(v) for v in values]
        parts.append(
            (
                f"{column} not in {values}",
                f"toString({quote(column)}) NOT IN {{v{i}:Array(String)}}",
            )
        )
    counts = _rows(
        client,
        f"SELECT {', '.join(f'countIf({c})' for _, c in parts)} FROM {audited.rows_table}",
        params,
    )[0]
    failing = {label: n for (label, _), n in zip(parts, counts, strict=True) if n}
    return Outcome(
        checks.ACCEPTED_VALUES,
        not failing,
        "; ".join(f"{n} rows where {label}" for label, n in failing.items())
        if failing
        else ("1 value rule holds" if len(parts) == 1 else f"{len(parts)} value rules hold"),
        failing=sum(failing.values()),
        sample=list(failing)[:SAMPLE_ROWS],
    )


def value_ranges(client: Client, audited: Audited) -> Outcome:
    """Rows of the audited table with a value outside its declared range, by column.

    Staging holds none by construction (such rows are rejected); run on a published table,
    this verifies it alone, e.g. after rows were written around the pipeline.
    """
    ranges = audited.table.ranges
    conditions = {column: out_of_range(column, bounds) for column, bounds in ranges.items()}
    any_bad = any_out_of_range(ranges)
    total, *counts = _rows(
        client,
        f"SELECT countIf({any_bad}), {', '.join(f'countIf({c})' for c in conditions.values())} "
        f"FROM {audited.rows_table}",
    )[0]
    if not total:
        return Outcome(checks.VALUE_RANGES, True, f"{len(ranges)} columns within their ranges")
    failing = {column: n for column, n in zip(ranges, counts, strict=True) if n}
    shown = ", ".join(quote(c) for c in (*audited.table.key, *failing))
    return Outcome(
        checks.VALUE_RANGES,
        False,
        "; ".join(
            f"{n} rows where {c} is outside [{ranges[c][0]:g}, {ranges[c][1]:g}]"
            for c, n in failing.items()
        ),
        failing=total,
        sample=_rows(
            client,
            f"SELECT {shown} FROM {audited.rows_table} WHERE {any_bad} LIMIT {SAMPLE_ROWS}",
        ),
        metadata={"out_of_range_by_column": failing},
    )


def audit(client: Client, audited: Audited) -> list[Outcome]:
    """Every Silver check except the GX suite."""
    rows = _counts(client, audited.rows_table)
    rejects = _counts(client, audited.rejects_table)
    if audited.partitions:  # a published table holds other months too: count the audited
        rows = {p: n for p, n in rows.items() if p in audited.partitions}
        rejects = {p: n for p, n in rejects.items() if p in audited.partitions}
    bronze = _counts(client, audited.bronze_sql, audited.bronze_params)
    outcomes = [
        column_schema(client, audited),
        not_empty(rows, audited.partitions or sorted(rows) or [""], audited.table.name),
        key_not_null(client, audited),
        key_unique(client, audited),
        *reconcile(bronze, rows, rejects, audited),
    ]
    reasons, sample = reject_reasons(client, audited)
    rate = outcomes[-1]
    outcomes[-1] = Outcome(
        rate.name,
        rate.passed,
        rate.summary,
        rate.failing,
        sample,
        {**rate.metadata, "rejects_by_reason": reasons},
    )
    if audited.table.checks.get("not_null") or audited.table.checks.get("accepted_values"):
        outcomes.append(accepted_values(client, audited))
    if audited.table.ranges:
        outcomes.append(value_ranges(client, audited))
    return outcomes
