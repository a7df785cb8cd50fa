"""Data diff: a staged build against what is published, by key, in one query.

Rows added (key only in the new rows), removed (key only in the published rows) and changed
(same key, some value differs), and per column the count of changed values and the shift of
its basic statistics (nulls; mean, min and max for numbers). The SQL is plain enough to run
on ClickHouse (Silver, and Gold computed there) and on Postgres (Gold's staged rows against
the mart). Floating-point values count as changed only beyond a relative 1e-9, so a
re-run that adds the same numbers in another order is no change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from onering_assets.checks.names import DATA_DIFF
from onering_assets.checks.outcome import Outcome

_NUMERIC = re.compile(r"int|float|double|decimal|numeric|real", re.IGNORECASE)
_INEXACT = re.compile(r"float|double|decimal|numeric|real", re.IGNORECASE)
STATS = ("nulls", "mean", "min", "max")
# A number as a nullable double, in each engine's spelling.
FLOAT = {"clickhouse": "CAST({} AS Nullable(Float64))", "postgres": "CAST({} AS double precision)"}


@dataclass(frozen=True)
class ColumnDiff:
    name: str
    changed: int  # rows present on both sides whose value differs
    old: dict[str, Any]  # nulls, and mean/min/max for a number
    new: dict[str, Any]


@dataclass(frozen=True)
class DataDiff:
    old_rows: int
    new_rows: int
    added: int
    removed: int
    changed: int
    columns: tuple[ColumnDiff, ...]
    fresh: int = 0  # of the added rows, those in partitions that had no published row

    @property
    def moved(self) -> int:
        """Published rows replaced: added to a published partition, removed or changed."""
        return self.added - self.fresh + self.removed + self.changed

    @property
    def moved_pct(self) -> float:
        """Rows added, removed or changed, in % of the published rows (0 with none)."""
        return round(100.0 * self.moved / self.old_rows, 3) if self.old_rows else 0.0

    def summary(self) -> str:
        fresh = f" ({self.fresh:,} in partitions not published before)" if self.fresh else ""
        return (
            f"{self.added:,} added{fresh}, {self.removed:,} removed, {self.changed:,} changed "
            f"of {self.old_rows:,} published rows ({self.moved_pct} % moved)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "old_rows": self.old_rows,
            "new_rows": self.new_rows,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "added_to_new_partitions": self.fresh,
            "moved_pct": self.moved_pct,
            "columns": {
                c.name: {"changed": c.changed, "old": c.old, "new": c.new}
                for c in self.columns
                if c.changed or c.old != c.new
            },
        }


def _q(name: str) -> str:
    return f'"{name}"'


def _differs(column: str, kind: str, dialect: str) -> str:
    n, o = f"n.{_q(column)}", f"o.{_q(column)}"
    if _INEXACT.search(kind):
        a, b = FLOAT[dialect].format(n), FLOAT[dialect].format(o)
        unequal = f"abs({a} - {b}) > 1e-9 * (abs({a}) + abs({b}) + 1)"
    else:
        unequal = f"{n} <> {o}"
    return (
        f"CASE WHEN {n} IS NULL AND {o} IS NULL THEN 0 WHEN {n} IS NULL OR {o} IS NULL THEN 1 "
        f"WHEN {unequal} THEN 1 ELSE 0 END"
    )


def diff_query(
    new: str,
    old: str,
    key: tuple[str, ...],
    columns: list[tuple[str, str]],
    dialect: str,
    partition: str = "''",
) -> str:
    """The diff of ``new`` against ``old`` as one row (read it with ``parse_row``).

    The row: old_rows, new_rows, added, removed, changed, then per column its changed count
    and its statistics old and new (``STATS`` order; mean/min/max NULL for text). ``new``
    and ``old`` are relations (a table name or a parenthesized SELECT) with the key and the
    columns; ``columns`` are (name, type) of the value columns to compare. ``partition`` is
    an expression of a row's partition: rows added to a partition with no published row are
    counted apart (``fresh``, last in the row): they replace nothing.
    """
    names = [*key, *(c for c, _ in columns if c not in key)]
    side = ", ".join(_q(c) for c in names)
    on = " AND ".join(f"n.{_q(k)} = o.{_q(k)}" for k in key)
    inner = [
        f"CASE WHEN n._p IN (SELECT {partition} FROM {old}) THEN 0 ELSE 1 END AS n_fresh",
        "coalesce(n._in, 0) AS n_in",
        "coalesce(o._in, 0) AS o_in",
        *(f"n.{_q(c)} AS n_{c}" for c, _ in columns),
        *(f"o.{_q(c)} AS o_{c}" for c, _ in columns),
        *(f"{_differs(c, t, dialect)} AS d_{c}" for c, t in columns),
    ]
    both = "n_in = 1 AND o_in = 1"
    any_change = " + ".join(f"d_{c}" for c, _ in columns) or "0"
    outer = [
        "sum(o_in) AS old_rows",
        "sum(n_in) AS new_rows",
        "sum(CASE WHEN n_in = 1 AND o_in = 0 THEN 1 ELSE 0 END) AS added",
        "sum(CASE WHEN n_in = 0 AND o_in = 1 THEN 1 ELSE 0 END) AS removed",
        f"sum(CASE WHEN {both} AND ({any_change}) > 0 THEN 1 ELSE 0 END) AS changed",
    ]
    for column, kind in columns:
        outer.append(f"sum(CASE WHEN {both} THEN d_{column} ELSE 0 END)")
        for prefix, flag in (("o", "o_in"), ("n", "n_in")):
            value = f"{prefix}_{column}"
            outer.append(f"sum(CASE WHEN {flag} = 1 AND {value} IS NULL THEN 1 ELSE 0 END)")
            for stat in ("avg", "min", "max"):
                if _NUMERIC.search(kind):
                    number = FLOAT[dialect].format(value)
                    outer.append(f"{stat}(CASE WHEN {flag} = 1 THEN {number} END)")
                else:
                    outer.append("NULL")
    outer.append("sum(CASE WHEN n_in = 1 AND o_in = 0 AND n_fresh = 1 THEN 1 ELSE 0 END)")
    return (
        f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} "
        f"FROM (SELECT {side}, 1 AS _in FROM {old}) AS o "
        f"FULL OUTER JOIN (SELECT {side}, {partition} AS _p, 1 AS _in FROM {new}) AS n "
        f"ON {on}) AS j"
    )


def _number(value: Any) -> Any:
    if value is None:
        return None
    number = float(value)
    if number != number:  # NaN: no value
        return None
    return round(number, 6)


def parse_row(row: Sequence[Any], columns: list[tuple[str, str]]) -> DataDiff:
    """The diff from ``diff_query``'s row."""
    values = list(row)
    head = [int(v or 0) for v in values[:5]]
    found, at = [], 5
    for name, _ in columns:
        changed = int(values[at] or 0)
        old = {"nulls": int(values[at + 1] or 0)}
        old.update(zip(STATS[1:], map(_number, values[at + 2 : at + 5]), strict=True))
        new = {"nulls": int(values[at + 5] or 0)}
        new.update(zip(STATS[1:], map(_number, values[at + 6 : at + 9]), strict=True))
        found.append(ColumnDiff(name, changed, old, new))
        at += 9
    return DataDiff(*head, columns=tuple(found), fresh=int(values[at] or 0))


def empty(relation: str) -> str:
    """The same columns with no rows (a table not published yet: everything is added)."""
    return f"(SELECT * FROM {relation} WHERE 1 = 0)"


LIMIT_KEY = "max_moved_pct"  # under a table's ``checks:`` in its YAML


def limit_of(checks: dict[str, Any]) -> float | None:
    """The declared limit on rows a rebuild may move, in % (None: no such check)."""
    value = checks.get(LIMIT_KEY)
    return None if value is None else float(value)


def moved_outcome(limit: float, diff: DataDiff | None) -> Outcome:
    """The ``data_diff`` check: at most ``limit`` % of the published rows moved by a build.

    ``diff`` is None for checks alone: there is no staged build to compare.
    """
    if diff is None:
        return Outcome(DATA_DIFF, True, "checks alone: no staged build to compare")
    metadata = {"data_diff": diff.to_json()}
    if diff.old_rows == 0:
        return Outcome(
            DATA_DIFF, True, f"first publish of these rows: {diff.summary()}", metadata=metadata
        )
    if diff.moved_pct <= limit:
        return Outcome(DATA_DIFF, True, f"{diff.summary()}, at most {limit:g} %", metadata=metadata)
    return Outcome(
        DATA_DIFF,
        False,
        f"{diff.summary()}: more than the declared {limit:g} % (checks.{LIMIT_KEY})",
        failing=diff.moved,
        metadata=metadata,
    )


def diffed(table: Any, diff: DataDiff | None) -> list[Outcome]:
    """The ``data_diff`` check's outcome when the table declares it, else nothing."""
    limit = limit_of(table.checks)
    return [] if limit is None else [moved_outcome(limit, diff)]


def diff_metadata(diff: DataDiff) -> dict[str, Any]:
    """What a materialization keeps of its data diff (its metadata)."""
    import dagster as dg

    return {
        "rows_added": diff.added,
        "rows_removed": diff.removed,
        "rows_changed": diff.changed,
        "rows_added_to_new_partitions": diff.fresh,
        "rows_moved_pct": diff.moved_pct,
        "data_diff": dg.MetadataValue.json(diff.to_json()),
    }
