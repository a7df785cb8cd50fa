"""`onering plan`: what applying the declared files would change, before anything runs.

The plan compares each Silver and Gold table's source (``sources.py``) with what each of its
published partitions was built from (``state.py``). Only tables whose source differs, and
the tables that read them, are parsed: a digest per file is all an unchanged table costs.

- A table whose declaration changed (``declared.compare``) rebuilds the partitions built
  from the old one when its data would differ; a change to checks alone re-audits what is
  published; a change to formatting or comments only is recorded.
- A downstream table rebuilds when a column it reads changed (``declared.breaking``),
  transitively; a change nobody reads (a new column) is non-breaking for it and rebuilds
  nothing. The same holds for a table built before its upstream was re-published.
- A new table builds the months its upstream has; a removed one is listed with the tables
  that still read it, and its data is kept.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from onering_assets.catalog import SqlTable
from onering_assets.change.declared import Impact, TableChange, breaking, compare
from onering_assets.change.sources import Source, declared, schema_for, table_of
from onering_assets.change.state import WHOLE, Deployed

SourceLookup = Callable[[set[str]], dict[str, Source]]
BronzeMonths = Callable[[str], list[str]]


@dataclass
class TablePlan:
    """What applying does to one table, and why."""

    key: str
    status: str  # added, removed, changed, affected, checks, record
    change: TableChange | None = None  # its own declaration's change
    because: dict[str, tuple[str, ...]] = field(default_factory=dict)  # upstream -> columns
    columns: tuple[str, ...] = ()  # its columns whose data changes ("*": every column)
    downstream: list[Impact] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)  # partitions (WHOLE: the table)
    audit: bool = False  # its checks changed: re-run them on what is published
    record: list[str] = field(default_factory=list)  # partitions to re-record only

    @property
    def breaking_for(self) -> list[Impact]:
        return [i for i in self.downstream if i.breaking]


@dataclass
class Plan:
    env: str
    tables: list[TablePlan]  # in build order; tables with nothing to do are left out
    declared: int
    # per table: why its build would stop, one line each with the fix (``gates.py``);
    # a line starting "note:" is information only
    stops: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.tables

    def get(self, key: str) -> TablePlan | None:
        return next((t for t in self.tables if t.key == key), None)

    def stops_of(self, key: str) -> list[str]:
        """Why ``key``'s build would stop (its notes left out)."""
        return [s for s in self.stops.get(key, []) if not s.startswith("note:")]

    @property
    def stopped(self) -> list[str]:
        """The planned tables whose build would stop, in build order."""
        return [t.key for t in self.tables if self.stops_of(t.key)]

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "declared": self.declared,
            "tables": [
                {
                    "key": t.key,
                    "status": t.status,
                    "added_columns": list(t.change.added) if t.change else [],
                    "removed_columns": list(t.change.removed) if t.change else [],
                    "changed_columns": list(t.change.changed) if t.change else [],
                    "rows_reshaped": bool(t.change and t.change.shape_changed),
                    "because": {k: list(v) for k, v in t.because.items()},
                    "data_changes": list(t.columns),
                    "downstream": [
                        {"key": i.key, "breaking": i.breaking, "columns": list(i.columns)}
                        for i in t.downstream
                    ],
                    "rebuild": _parts(t.rebuild),
                    "audit": t.audit,
                    "record": _parts(t.record),
                    "stops": self.stops_of(t.key),
                    "notes": [s for s in self.stops.get(t.key, []) if s.startswith("note:")],
                }
                for t in self.tables
            ],
        }


def _parts(partitions: list[str]) -> list[str]:
    """Partitions for JSON: the whole of an unpartitioned table is "*" (as every column is)."""
    return ["*" if p == WHOLE else p for p in partitions]


class _Planner:
    def __init__(
        self,
        current: dict[str, Source],
        deployed: dict[str, dict[str, Deployed]],
        recorded: SourceLookup,
        bronze_months: BronzeMonths,
    ) -> None:
        self.current = current
        self.deployed = deployed
        self.bronze_months = bronze_months
        wanted = {d.source for parts in deployed.values() for d in parts.values()}
        wanted |= {
            s for parts in deployed.values() for d in parts.values() for s in d.inputs.values()
        }
        self._by_digest = {s.digest: s for s in current.values()}
        self._recorded = recorded
        self._wanted = wanted - set(self._by_digest)
        self._decls: dict[str, dict[str, Any]] = {}
        self._tables: dict[str, SqlTable] = {}
        self._blind: set[str] = set()  # tables parsed without column lineage
        self.effects: dict[str, TableChange] = {}  # data changes that flow downstream
        self.plans: dict[str, TablePlan] = {}

    # -- lazily parsed ---------------------------------------------------------------
    def source(self, digest: str) -> Source | None:
        if digest not in self._by_digest and self._wanted:
            self._by_digest.update(self._recorded(self._wanted))
            self._wanted = set()
        return self._by_digest.get(digest)

    def declaration(self, source: Source) -> dict[str, Any]:
        if source.digest not in self._decls:
            self._decls[source.digest] = declared(source, self.current)
        return self._decls[source.digest]

    def table(self, key: str) -> SqlTable:
        """The current table, parsed.

        Without column lineage when it no longer resolves (e.g. a table it reads was
        removed): then every one of its columns counts as reading the change.
        """
        if key not in self._tables:
            source = self.current[key]
            try:
                self._tables[key] = table_of(source, self.current)
            except Exception:
                self._tables[key] = table_of(source, {})
                self._blind.add(key)
        return self._tables[key]

    def change(self, key: str, old_digest: str, new: Source | None) -> TableChange:
        old = self.source(old_digest)
        if old is None:  # recorded before its text was kept: assume everything changed
            return TableChange(key, "changed", shape_changed=True, checks_changed=True)
        return compare(key, self.declaration(old), self.declaration(new) if new else None)

    # -- the plan ----------------------------------------------------------------------
    def order(self) -> list[str]:
        graph = graphlib.TopologicalSorter[str]()
        for key, source in self.current.items():
            graph.add(key, *(k for k in source.reads() if k in self.current))
        for key, parts in self.deployed.items():
            for d in parts.values():
                graph.add(key, *d.inputs)
        return list(graph.static_order())

    def consumers(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for key, parts in self.deployed.items():
            for d in parts.values():
                for upstream in d.inputs:
                    found.setdefault(upstream, set()).add(key)
        for key, source in self.current.items():
            for upstream in source.reads():
                found.setdefault(upstream, set()).add(key)
        return found

    def run(self) -> list[TablePlan]:
        consumers = self.consumers()
        dirty = {k for k, s in self.current.items() if s.layer != "bronze"} - set(self.deployed)
        dirty |= {k for k in self.deployed if k not in self.current}
        for key, parts in self.deployed.items():
            source = self.current.get(key)
            for d in parts.values():
                if source is None or d.source != source.digest:
                    dirty.add(key)
                for upstream, digest in d.inputs.items():
                    now = self.current.get(upstream)
                    if now is None or now.digest != digest:
                        dirty.add(key)
        for key in self.order():
            if key not in dirty or key.startswith("bronze/"):
                continue
            plan = self.plan_table(key)
            if plan is None:
                continue
            self.plans[key] = plan
            if key in self.effects:
                dirty |= consumers.get(key, set())
        rank = {"silver": 0, "gold": 1, "features": 2}
        return sorted(self.plans.values(), key=lambda p: (rank.get(p.key.split("/")[0], 3), p.key))

    def plan_table(self, key: str) -> TablePlan | None:
        source = self.current.get(key)
        parts = self.deployed.get(key, {})
        if source is None:
            change = TableChange(key, "removed", removed=tuple(self.declaration_of_any(parts)))
            self.effects[key] = change
            return TablePlan(key, "removed", change, columns=("*",))
        if not parts:
            return self.plan_added(key, source)
        plan = TablePlan(key, "record")
        own = [d for d in parts.values() if d.source != source.digest]
        for digest in sorted({d.source for d in own}):
            change = self.change(key, digest, source)
            plan.change = change if plan.change is None else _merge(plan.change, change)
            hit = [d.partition for d in own if d.source == digest]
            if change.data_changed:
                plan.rebuild += hit
            else:
                plan.record += hit
                plan.audit = plan.audit or change.checks_changed
        self.upstream_effects(key, plan, parts)
        return self.finish(key, plan, parts)

    def declaration_of_any(self, parts: dict[str, Deployed]) -> list[str]:
        for d in parts.values():
            old = self.source(d.source)
            if old is not None:
                return list(self.declaration(old)["columns"])
        return []

    def upstream_effects(self, key: str, plan: TablePlan, parts: dict[str, Deployed]) -> None:
        """Columns of ``key`` that read what changed upstream, and the partitions to rebuild."""
        table = self.table(key)
        for upstream in sorted({f"{layer}/{name}" for layer, name in table.upstream}):
            pending = self.effects.get(upstream)
            now = self.current.get(upstream)
            if pending is not None:
                hit = self.impact(upstream, pending, table)
                if hit:
                    plan.because[upstream] = hit
                    plan.rebuild += list(parts)
                elif now is not None:  # non-breaking: record what it now reads
                    plan.record += [
                        p for p, d in parts.items() if d.inputs.get(upstream) != now.digest
                    ]
                continue
            for d in parts.values():
                was = d.inputs.get(upstream)
                if now is None or was is None or was == now.digest:
                    continue
                hit = self.impact(upstream, self.change(upstream, was, now), table)
                if hit:
                    plan.because[upstream] = tuple(sorted({*plan.because.get(upstream, ()), *hit}))
                    plan.rebuild.append(d.partition)
                else:
                    plan.record.append(d.partition)

    def impact(self, upstream: str, change: TableChange, table: SqlTable) -> tuple[str, ...]:
        impact = breaking(change, table, schema_for(table.upstream, self.current))
        if f"{table.layer}/{table.name}" in self._blind:
            impact = Impact(impact.key, table.parsed.output_columns)
        owner = self.plans.get(upstream)
        if owner is not None and all(i.key != impact.key for i in owner.downstream):
            owner.downstream.append(impact)
        return impact.columns

    def finish(self, key: str, plan: TablePlan, parts: dict[str, Deployed]) -> TablePlan | None:
        plan.rebuild = sorted(set(plan.rebuild))
        plan.record = sorted(set(plan.record) - set(plan.rebuild))
        own = plan.change.data_changed if plan.change else False
        if own:
            plan.status = "changed"
        elif plan.because:
            plan.status = "affected"
        elif plan.audit:
            plan.status = "checks"
        if not (plan.rebuild or plan.record or plan.audit):
            return None
        if plan.rebuild:
            changed = set(plan.change.changed + plan.change.added) if own and plan.change else set()
            for columns in plan.because.values():
                changed |= set(columns)
            reshaped = own and plan.change is not None and plan.change.shape_changed
            plan.columns = ("*",) if reshaped else tuple(sorted(changed))
            self.effects[key] = TableChange(
                key,
                "changed",
                changed=plan.columns,
                removed=plan.change.removed if own and plan.change else (),
                shape_changed=reshaped,
            )
        return plan

    def months_of(self, key: str) -> set[str]:
        """The partitions a table has, or will have once this plan is applied."""
        planned = self.plans.get(key)
        return {*self.deployed.get(key, {}), *(planned.rebuild if planned else ())}

    def plan_added(self, key: str, source: Source) -> TablePlan:
        table = self.table(key)
        if not table.partitioned:
            months = [WHOLE]
        elif table.layer == "silver":
            months = self.bronze_months(table.upstream[0][1])
        else:
            months = sorted(
                {p for layer, name in table.upstream for p in self.months_of(f"{layer}/{name}")}
                - {WHOLE}
            )
        change = TableChange(key, "added", added=tuple(table.parsed.output_columns))
        return TablePlan(key, "added", change, columns=("*",), rebuild=months)


def _merge(a: TableChange, b: TableChange) -> TableChange:
    def union(x: tuple[str, ...], y: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*x, *y)))

    return TableChange(
        a.key,
        "changed",
        added=union(a.added, b.added),
        removed=union(a.removed, b.removed),
        changed=union(a.changed, b.changed),
        shape_changed=a.shape_changed or b.shape_changed,
        checks_changed=a.checks_changed or b.checks_changed,
    )


def make_plan(
    current: dict[str, Source],
    deployed: dict[str, dict[str, Deployed]],
    recorded: SourceLookup,
    bronze_months: BronzeMonths,
    env: str = "prod",
) -> Plan:
    """The plan from the project's sources to what ``deployed`` records (see module doc)."""
    tables = _Planner(current, deployed, recorded, bronze_months).run()
    declared_count = sum(1 for s in current.values() if s.layer != "bronze")
    return Plan(env, tables, declared_count)
