"""A declared table as a comparable record: per column its type and full derivation.

``declaration`` turns a Silver or Gold table's SQL and YAML into plain JSON that can be
stored when the table is published and compared with the files later: each output column's
type and the SQL of every step it is computed through (sqlglot's column lineage, so a change
inside a CTE shows on the columns that read it), and the *shape* — everything else that
decides which rows exist (FROM, JOIN, WHERE, GROUP BY, the key, partitioning, declared
ranges). ``compare`` says what changed; ``breaking`` which downstream columns read it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.schema import MappingSchema

from onering_assets.catalog import SqlTable
from onering_assets.lineage.sql import DIALECT, prefer_source_columns

Schema = dict[str, dict[str, dict[str, str]]]
REJECT_REASON = "_reject_reason"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _derivations(table: SqlTable, schema: Schema) -> dict[str, str]:
    """Each output column's derivation: the SQL of every step of its lineage, in order."""
    mapping = MappingSchema(dict(schema), dialect=DIALECT)
    tree = qualify(
        prefer_source_columns(table.parsed.tree.copy(), schema),
        schema=mapping,
        dialect=DIALECT,
        validate_qualify_columns=False,
    )
    out = {}
    for column in table.parsed.output_columns:
        node = lineage(column, tree, schema=mapping, dialect=DIALECT, trim_selects=False)
        steps = sorted({n.expression.sql(dialect=DIALECT, comments=False) for n in node.walk()})
        out[column] = " | ".join(steps)
    return out


def _shape(table: SqlTable) -> str:
    """Everything but the projections: which rows exist and how they are keyed."""
    tree = table.parsed.tree.copy()
    for select in tree.find_all(exp.Select):
        select.set("expressions", [exp.Star()])
    return _digest(
        {
            "sql": tree.sql(dialect=DIALECT, comments=False),
            "key": list(table.key),
            "partitioned": table.partitioned,
            "partition_column": table.partition_column,
            "ranges": {c: list(b) for c, b in table.ranges.items()},
        }
    )


def declaration(table: SqlTable, schema: Schema) -> dict[str, Any]:
    """The table's declaration as JSON: fingerprint, shape, and each column's type and SQL."""
    derivations = _derivations(table, schema)
    declared = {c.name: c.type for c in table.columns}
    columns = {
        name: {"type": declared.get(name, ""), "sql": derivations[name]}
        for name in table.parsed.output_columns
    }
    checks = _digest({"checks": table.checks, "max_reject_pct": table.max_reject_pct})
    body = {"shape": _shape(table), "columns": columns, "checks": checks}
    return {"key": f"{table.layer}/{table.name}", "fingerprint": _digest(body), **body}


@dataclass(frozen=True)
class TableChange:
    """How one table's declaration differs from what was deployed."""

    key: str
    kind: str  # added, removed, changed, unchanged
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    shape_changed: bool = False
    checks_changed: bool = False

    @property
    def data_changed(self) -> bool:
        """Whether rebuilding would write different rows (not only different checks)."""
        return self.kind in ("added", "removed") or bool(
            self.removed or self.changed or self.added or self.shape_changed
        )

    def affects(self, column: str) -> bool:
        """Whether a downstream column reading ``column`` of this table sees the change."""
        return (
            self.kind == "removed" or self.shape_changed or column in (*self.changed, *self.removed)
        )


def compare(key: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> TableChange:
    if old is None and new is None:
        raise ValueError(f"{key}: nothing to compare")
    if old is None:
        return TableChange(key, "added", added=tuple(new["columns"]))  # type: ignore[index]
    if new is None:
        return TableChange(key, "removed", removed=tuple(old["columns"]))
    if old["fingerprint"] == new["fingerprint"]:
        return TableChange(key, "unchanged")
    before, after = old["columns"], new["columns"]
    changed = tuple(c for c in after if c in before and before[c] != after[c])
    return TableChange(
        key,
        "changed",
        added=tuple(c for c in after if c not in before),
        removed=tuple(c for c in before if c not in after),
        changed=changed,
        # A Silver row with a reject reason is rejected, not kept: a change to the reason
        # can change which rows the table keeps.
        shape_changed=old["shape"] != new["shape"] or REJECT_REASON in changed,
        checks_changed=old["checks"] != new["checks"],
    )


@dataclass(frozen=True)
class Impact:
    """A downstream table's columns that read what changed (empty: non-breaking for it)."""

    key: str
    columns: tuple[str, ...] = field(default_factory=tuple)

    @property
    def breaking(self) -> bool:
        return bool(self.columns)


def shaping_columns(
    downstream: SqlTable, layer: str, name: str, schema: Schema | None = None
) -> set[str] | None:
    """Columns of ``layer.name`` that decide which rows ``downstream`` has, or their grouping.

    A column read in a WHERE, JOIN, GROUP BY, HAVING, QUALIFY or ORDER BY anywhere in the
    SQL, followed through aliases, CTEs and subqueries to the upstream column it comes from
    (``GROUP BY day`` where ``day`` is ``observed_date`` of a CTE over ``silver.weather``).
    None when the SQL cannot be resolved: then every column counts.
    """
    try:
        tree = qualify(
            prefer_source_columns(downstream.parsed.tree.copy(), schema or {}),
            schema=MappingSchema(dict(schema or {}), dialect=DIALECT),
            dialect=DIALECT,
            validate_qualify_columns=False,
        )
        found: set[str] = set()
        for scope in traverse_scope(tree):
            select = scope.expression
            if not isinstance(select, exp.Select):
                continue
            clauses = [select.args.get(k) for k in ("where", "group", "having", "qualify", "order")]
            clauses += list(select.args.get("joins") or [])
            for clause in clauses:
                for column in clause.find_all(exp.Column) if clause is not None else ():
                    found |= _resolve(scope, column, (layer, name))
        return found
    except Exception:  # unresolvable SQL: every column counts (the safe side)
        return None


def _resolve(scope: Scope, column: exp.Column, target: tuple[str, str]) -> set[str]:
    """The columns of ``target`` that ``column`` (in ``scope``) is computed from."""
    source = scope.sources.get(column.table)
    if isinstance(source, exp.Table):
        return {column.name} if (source.db, source.name) == target else set()
    if isinstance(source, Scope) and isinstance(source.expression, exp.Select):
        for projection in source.expression.selects:
            if projection.alias_or_name == column.name:
                found: set[str] = set()
                for inner in projection.find_all(exp.Column):
                    found |= _resolve(source, inner, target)
                return found
    return set()


def breaking(change: TableChange, downstream: SqlTable, schema: Schema | None = None) -> Impact:
    """Which of ``downstream``'s columns read a changed, removed or re-shaped column.

    All of them when the change re-shapes the upstream table or touches a column the
    downstream filters, joins or groups on.
    """
    layer, name = change.key.split("/", 1)
    if (layer, name) not in downstream.upstream:
        return Impact(f"{downstream.layer}/{downstream.name}")
    shaping = shaping_columns(downstream, layer, name, schema)
    everything = (
        change.shape_changed
        or change.kind == "removed"
        or shaping is None
        or any(change.affects(c) for c in shaping)
    )
    hit = [
        column
        for column, sources in downstream.parsed.column_lineage.items()
        if everything
        or any(s[0] == layer and s[1] == name and change.affects(s[2].strip('"')) for s in sources)
    ]
    return Impact(f"{downstream.layer}/{downstream.name}", tuple(hit))
