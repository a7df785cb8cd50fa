"""Gold reconciliation against an independent count: rows landed in Bronze minus Silver rejects.

A mart's count column (``flights``) counts Silver rows. Comparing it with Silver read through
the mart's own filter proves nothing, so this count shares nothing with the mart: it reads
the Bronze Parquet files in the lake (ClickHouse ``file()``/``s3()``) and
``silver.<table>_rejects``, and groups both by a grain derived from the raw landed strings
(never from Silver's typed columns). Silver's own reconciliation proves landed = kept +
rejected, so landed minus rejected is what Silver holds, per group. A mart whose SQL drops
or duplicates rows, or a Silver table that lost rows after it was published, fails.

The count is only independent evidence if Bronze and Silver hold the same ingestion: while
another run has landed a month in Bronze and not yet published its Silver build (or that
build failed its checks), the two differ for reasons that say nothing about the mart. So
every ``_batch_id`` is compared first (Bronze's file, Silver's rows and rejects, and the
Silver batches the mart was computed from), before and after counting; a difference is
``UpstreamChangedError`` (retryable, nothing published), never a failed reconciliation.

Declared in the mart's ``.yml`` under ``checks:``::

    reconcile_sum: flights          # the Gold column that counts landed rows
    reconcile_rows_of: flights      # the Silver table whose rows it counts
    reconcile_by: {carrier: carrier, month: month}  # Gold column -> grain of a landed row
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
from psycopg import sql

from onering_assets.catalog import SqlTable, identifier
from onering_assets.checks import names as checks
from onering_assets.checks.outcome import SAMPLE_ROWS, Outcome
from onering_assets.errors import ConfigError, UpstreamChangedError
from onering_assets.namespaces import silver_db
from onering_assets.partitions import MONTHLY

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from onering_assets.resources import LakeResource


def _month(raw: Callable[[str], str]) -> str:
    return (
        f"concat(toString(toUInt16OrNull({raw('year')})), '-', "
        f"leftPad(toString(toUInt8OrNull({raw('month')})), 2, '0'))"
    )


def _day(raw: Callable[[str], str]) -> str:
    return f"concat({_month(raw)}, '-', leftPad(toString(toUInt8OrNull({raw('day')})), 2, '0'))"


def _code(column: str) -> Callable[[Callable[[str], str]], str]:
    def grain(raw: Callable[[str], str]) -> str:
        return f"upper(trimBoth({raw(column)}))"

    return grain


# Grain of a landed row, from its raw strings (ClickHouse), and of a Gold value (Postgres):
# both sides render the same text, e.g. '2013-02', '2013-02-12', 'EWR'.
LANDED_GRAINS: dict[str, Callable[[Callable[[str], str]], str]] = {
    "month": _month,
    "day": _day,
    "carrier": _code("carrier"),
    "origin": _code("origin"),
    "dest": _code("dest"),
}
GOLD_GRAINS: dict[str, LiteralString] = {
    "month": "to_char({}, 'YYYY-MM')",
    "day": "to_char({}, 'YYYY-MM-DD')",
    "carrier": "{}::text",
    "origin": "{}::text",
    "dest": "{}::text",
}


@dataclass(frozen=True)
class Reconciliation:
    """What one mart declares: ``sum(column)`` per ``by`` group = landed rows of ``rows_of``."""

    column: str
    rows_of: str
    by: dict[str, str]

    @classmethod
    def of(cls, table: SqlTable) -> Reconciliation | None:
        """The mart's declaration, validated; ``None`` if it declares no reconciliation."""
        spec = table.checks
        if not spec.get("reconcile_sum"):
            return None
        where = f"{table.path.with_suffix('.yml')}: checks"
        rows_of = identifier(str(spec.get("reconcile_rows_of", "")), where=where)
        by = spec.get("reconcile_by")
        if not isinstance(by, dict) or not by:
            raise ConfigError(f"{where}: declare reconcile_by: {{gold column: grain}}.")
        columns = {c.name for c in table.columns}
        recon = cls(str(spec["reconcile_sum"]), rows_of, {str(k): str(v) for k, v in by.items()})
        unknown = [c for c in (recon.column, *recon.by) if c not in columns]
        grains = [g for g in recon.by.values() if g not in LANDED_GRAINS]
        if unknown or grains or ("silver", rows_of) not in table.upstream:
            raise ConfigError(
                f"{where}: reconcile_sum/reconcile_by must name columns of gold.{table.name} "
                f"(unknown: {unknown}), grains among {sorted(LANDED_GRAINS)} (unknown: {grains}),"
                f" and reconcile_rows_of a Silver table the mart reads (got {rows_of!r})."
            )
        return recon

    def describe(self) -> str:
        return (
            f"sum({self.column}) per {', '.join(self.by)} = rows of bronze.{self.rows_of} "
            f"landed minus silver.{self.rows_of}_rejects"
        )


def landed_months(lake: LakeResource, table: str, partitions: list[str] | None) -> list[str]:
    """The months to count: the run's, or every month, that have landed in the lake."""
    months = partitions or MONTHLY.get_partition_keys()
    return [p for p in months if lake.has_rows_for("bronze", table, p)]


Batches = dict[str, frozenset[str]]


def silver_batches(client: Client, table: str, months: list[str]) -> Batches:
    """Per month: the ``_batch_id`` values of ``silver.<table>`` and its rejects."""
    if not months:
        return {}
    name = identifier(table, where="reconciliation")
    rows = client.query(
        "SELECT _partition, groupUniqArray(_batch_id) FROM ("
        f" SELECT _partition, _batch_id FROM {silver_db()}.`{name}`"
        " WHERE _partition IN {m:Array(String)}"
        f" UNION ALL SELECT _partition, _batch_id FROM {silver_db()}.`{name}_rejects`"
        " WHERE _partition IN {m:Array(String)}) GROUP BY _partition",
        parameters={"m": months},
        settings={"readonly": 2},
    ).result_rows
    return {str(month): frozenset(batches) for month, batches in rows}


def bronze_batches(client: Client, lake: LakeResource, table: str, months: list[str]) -> Batches:
    """Per month: the ``_batch_id`` values of the Bronze file landed in the lake."""
    if not months:
        return {}
    source, params = lake.clickhouse_source("bronze", table, months)
    rows = client.query(
        f"SELECT _partition, groupUniqArray(_batch_id) FROM {source} GROUP BY _partition",
        parameters=params,
        settings={"readonly": 2},
    ).result_rows
    return {str(month): frozenset(batches) for month, batches in rows}


def silver_read(
    client: Client, lake: LakeResource, recon: Reconciliation, partitions: list[str] | None
) -> Batches:
    """What the mart is about to be computed from: taken before the compute, compared after."""
    return silver_batches(client, recon.rows_of, landed_months(lake, recon.rows_of, partitions))


def _versions(client: Client, lake: LakeResource, table: str, months: list[str]) -> tuple:
    return bronze_batches(client, lake, table, months), silver_batches(client, table, months)


def _changing(
    table: str, months: list[str], before: tuple, after: tuple, read: Batches | None
) -> str | None:
    """Why Bronze and Silver cannot be reconciled right now, or ``None``."""
    bronze, silver = after
    if before != after:
        return f"bronze/silver {table} changed while they were counted (another run publishing)"
    differ = [m for m in months if bronze.get(m, frozenset()) != silver.get(m, frozenset())]
    if differ:
        m = differ[0]
        which = "those months" if len(differ) > 1 else m
        return (
            f"silver.{table} {', '.join(differ)} is not built from what Bronze holds (e.g. "
            f"{m}: Silver batch {sorted(silver.get(m, []))}, Bronze batch "
            f"{sorted(bronze.get(m, []))}): another run is re-ingesting it, or its Silver "
            f"build failed; materialize silver/{table} for {which}"
            " or wait for that run"
        )
    if read is not None:
        moved = [m for m in sorted(set(read) | set(silver)) if read.get(m) != silver.get(m)]
        if moved:
            return (
                f"silver.{table} {', '.join(moved)} was republished while the mart was "
                "computed (another run); run it again"
            )
    return None


def independent_count(
    client: Client,
    lake: LakeResource,
    recon: Reconciliation,
    months: list[str],
    read: Batches | None,
) -> dict[tuple, int]:
    """``landed_minus_rejected``, refused with UpstreamChangedError while Bronze and Silver differ.

    ``read``: the Silver batches the staged mart was computed from (``None`` when auditing
    what is published).
    """
    with lake.reading():
        before = _versions(client, lake, recon.rows_of, months)
        landed = landed_minus_rejected(client, lake, recon, months)
        after = _versions(client, lake, recon.rows_of, months)
    why = _changing(recon.rows_of, months, before, after, read)
    if why:
        raise UpstreamChangedError(f"cannot reconcile now: {why}. Nothing was published.")
    return landed


def landed_minus_rejected(
    client: Client, lake: LakeResource, recon: Reconciliation, months: list[str]
) -> dict[tuple, int]:
    """Per group: rows landed in Bronze minus rows Silver rejected (zero groups left out)."""
    if not months:
        return {}
    grains = list(recon.by.values())
    source, params = lake.clickhouse_source("bronze", recon.rows_of, months)

    def bronze(column: str) -> str:
        return f"`{identifier(column, where='reconciliation')}`"

    def rejected(column: str) -> str:
        return (
            f"JSONExtract(_raw, '{identifier(column, where='reconciliation')}', 'Nullable(String)')"
        )

    groups = ", ".join(f"g{i}" for i in range(len(grains)))
    landed = ", ".join(f"{LANDED_GRAINS[g](bronze)} AS g{i}" for i, g in enumerate(grains))
    rejects = ", ".join(f"{LANDED_GRAINS[g](rejected)} AS g{i}" for i, g in enumerate(grains))
    query = (
        f"SELECT {groups}, sum(n) AS net FROM ("
        f" SELECT {landed}, toInt64(count()) AS n FROM {source} GROUP BY {groups}"
        f" UNION ALL SELECT {rejects}, -toInt64(count()) AS n"
        f" FROM {silver_db()}.`{recon.rows_of}_rejects`"
        " WHERE _partition IN {months:Array(String)}"
        f" GROUP BY {groups}"
        f") GROUP BY {groups} HAVING net != 0"
    )
    result = client.query(query, parameters={**params, "months": months}, settings={"readonly": 2})
    return {tuple(row[:-1]): int(row[-1]) for row in result.result_rows}


def gold_sums(
    conn: psycopg.Connection, recon: Reconciliation, relation: sql.Composable
) -> dict[tuple, int]:
    """Per group: ``sum(column)`` over the audited Gold rows."""
    groups = sql.SQL(", ").join(
        sql.SQL(GOLD_GRAINS[grain]).format(sql.Identifier(column))
        for column, grain in recon.by.items()
    )
    query = sql.SQL("SELECT {g}, sum({c}) FROM {r} GROUP BY {g}").format(
        g=groups, c=sql.Identifier(recon.column), r=relation
    )
    return {tuple(row[:-1]): int(row[-1]) for row in conn.execute(query).fetchall()}


def compare(recon: Reconciliation, gold: dict[tuple, int], landed: dict[tuple, int]) -> Outcome:
    """One outcome: every group's Gold sum against its independent count."""
    off: list[dict[str, Any]] = [
        {
            **dict(zip(recon.by, key, strict=True)),
            f"gold_{recon.column}": gold.get(key, 0),
            "landed_minus_rejected": landed.get(key, 0),
        }
        for key in sorted(set(gold) | set(landed), key=str)
        if gold.get(key, 0) != landed.get(key, 0)
    ]
    got, expected = sum(gold.values()), sum(landed.values())
    meta = {"gold_sum": got, "landed_minus_rejected": expected, "groups": len(landed)}
    if off:
        return Outcome(
            checks.RECONCILIATION,
            False,
            f"{recon.describe()}: {len(off)} group(s) differ (gold {got}, independent count "
            f"{expected}), e.g. {off[0]}",
            failing=len(off),
            sample=off[:SAMPLE_ROWS],
            metadata=meta,
        )
    return Outcome(
        checks.RECONCILIATION,
        True,
        f"{recon.describe()}: {got:,} in all, equal in each of {len(landed)} group(s)",
        metadata=meta,
    )
