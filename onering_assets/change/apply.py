"""Apply a plan: the planned partitions through the normal write–audit–publish runs.

Rebuilds run layer by layer (Silver, then Gold), one Dagster run per contiguous range of
months that the same tables need, so a table is rebuilt for exactly the partitions the plan
names and each publish records itself (``state.record_deployment``). A change to checks alone
re-runs those checks on what is published and is recorded only when they pass; a change
that writes no different data (formatting, a column nobody downstream reads) is recorded
without a run. A removed table's records are marked removed; its data is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from onering_assets.change.plan import Plan, TablePlan
from onering_assets.change.state import WHOLE
from onering_assets.partitions import MONTHLY

# Planned tables are rebuilt layer by layer: Silver, then what reads it.
ORDER = {"silver": 0, "gold": 1, "features": 2}


@dataclass(frozen=True)
class Run:
    """One run of the apply: these tables over ``first``..``last`` (None: unpartitioned)."""

    keys: tuple[str, ...]
    first: str | None = None
    last: str | None = None

    def describe(self) -> str:
        months = "" if self.first is None else f" for {_span(self.first, self.last)}"
        return f"{', '.join(self.keys)}{months}"


@dataclass
class Outcome:
    runs: list[tuple[Run, bool]] = field(default_factory=list)
    audits: list[tuple[str, bool]] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(ok for _, ok in (*self.runs, *self.audits))


def _span(first: str, last: str | None) -> str:
    return first if first == last or last is None else f"{first}..{last}"


def ranges(months: list[str]) -> list[tuple[str, str]]:
    """Contiguous runs of months, in calendar order (gaps split them)."""
    order = {m: i for i, m in enumerate(MONTHLY.get_partition_keys())}
    known = sorted((m for m in months if m in order), key=order.__getitem__)
    spans: list[tuple[str, str]] = []
    for month in known:
        if spans and order[month] == order[spans[-1][1]] + 1:
            spans[-1] = (spans[-1][0], month)
        else:
            spans.append((month, month))
    return spans


def runs(plan: Plan) -> list[Run]:
    """The runs that rebuild exactly the plan's partitions, upstream layers first."""
    out: list[Run] = []
    rebuilt = [t for t in plan.tables if t.rebuild and t.status != "removed"]
    for layer in sorted({t.key.split("/")[0] for t in rebuilt}, key=ORDER.__getitem__):
        tables = [t for t in rebuilt if t.key.startswith(f"{layer}/")]
        whole = tuple(t.key for t in tables if t.rebuild == [WHOLE])
        groups: dict[tuple[str, ...], list[str]] = {}
        for t in tables:
            if t.rebuild != [WHOLE]:
                groups.setdefault(tuple(m for m in t.rebuild if m != WHOLE), []).append(t.key)
        for months, keys in groups.items():
            for first, last in ranges(list(months)):
                # An unpartitioned table is built whole once, with its layer's first run.
                extra, whole = whole, ()
                out.append(Run(tuple(sorted(keys)) + extra, first, last))
        if whole:
            out.append(Run(whole))
    return out


def apply(
    plan: Plan,
    execute: Callable[[Run], bool],
    audit: Callable[[TablePlan], bool],
    record: Callable[[TablePlan], None],
    forget: Callable[[str], None],
) -> Outcome:
    """Carry the plan out; stop at the first failed run (what is left stays planned)."""
    outcome = Outcome()
    for run in runs(plan):
        ok = execute(run)
        outcome.runs.append((run, ok))
        if not ok:
            return outcome
    for table in plan.tables:
        if table.status == "removed":
            forget(table.key)
            outcome.forgotten.append(table.key)
        elif table.record:
            if table.audit:
                outcome.audits.append((table.key, audit(table)))
                if not outcome.audits[-1][1]:
                    continue
            record(table)
            outcome.recorded.append(table.key)
    return outcome
