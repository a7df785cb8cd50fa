"""One result builder for every check: an outcome becomes a Dagster AssetCheckResult."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from onering_assets.checks.names import NOT_EMPTY

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Outcome:
    """What one check found; ``failing`` counts the offending rows (or items)."""

    name: str
    passed: bool
    summary: str
    failing: int = 0
    sample: Sequence[Any] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(
        cls,
        name: str,
        summary: str,
        problems: Sequence[Any],
        metadata: dict[str, Any] | None = None,
    ) -> Outcome:
        """A failure counting ``problems``, with the first few as its sample."""
        return cls(
            name,
            False,
            summary,
            failing=len(problems),
            sample=problems[:SAMPLE_ROWS],
            metadata=metadata or {},
        )

    def to_result(self, asset_key: dg.AssetKey, *, blocking: bool) -> dg.AssetCheckResult:
        metadata: dict[str, Any] = {"summary": self.summary, "failing": self.failing}
        if self.sample:
            metadata["sample"] = dg.MetadataValue.json(jsonable(self.sample))
        metadata.update(self.metadata)
        severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=self.name,
            passed=self.passed,
            severity=severity,
            metadata=metadata,
            description=self.summary,
        )


def jsonable(value: Any) -> Any:
    """Rows from any driver, made JSON-safe (dates and decimals as strings)."""
    return json.loads(json.dumps(value, default=str))


def failures_message(outcomes: Iterable[Outcome]) -> str:
    """One line per failed check: ``name: summary``."""
    return "\n".join(f"- {o.name}: {o.summary}" for o in outcomes if not o.passed)


def same_type(a: str, b: str) -> bool:
    """Whether two spellings name one type (``Decimal(10,2)`` is ``Decimal(10, 2)``)."""
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


def schema_outcome(
    name: str, declared: Sequence[tuple[str, str]], actual: Sequence[tuple[str, str]], where: str
) -> Outcome:
    """Compare declared ``(column, type)`` pairs with what the store has."""
    have = dict(actual)
    problems = []
    for column, expected in declared:
        if column not in have:
            problems.append(f"missing {column}")
        elif not same_type(have[column], expected):
            problems.append(f"{column} is {have[column]}, declared {expected}")
    extra = sorted(set(have) - {c for c, _ in declared})
    problems += [f"undeclared {c}" for c in extra]
    if problems:
        return Outcome.failed(
            name, f"{where} differs from its declaration: {'; '.join(problems)}", problems
        )
    return Outcome(name, True, f"{where} matches its {len(declared)} declared columns.")


def not_published(names: Iterable[str], what: str) -> list[Outcome]:
    """Every check fails with the same clear reason when there is nothing to audit yet."""
    reason = f"{what} has not been materialized yet; run `onering materialize` first."
    return [Outcome(name, False, reason, failing=1) for name in names]


def not_empty(counts: dict[str, int], wanted: Iterable[str], table: str) -> Outcome:
    """Every wanted partition (``""`` for a whole table) has rows; counts go in metadata."""
    empty = [p or table for p in wanted if counts.get(p, 0) == 0]
    meta = {"rows_by_partition": {p or table: n for p, n in sorted(counts.items())}}
    if empty:
        return Outcome.failed(NOT_EMPTY, f"no rows for {', '.join(empty)}", empty, meta)
    return Outcome(NOT_EMPTY, True, f"{sum(counts.values())} rows", metadata=meta)
