"""The checks of feature views and their offline rows, as plain functions on the rows.

Each returns an ``Outcome`` (``onering_assets.checks.outcome``), so the assets emit them
like every other layer's checks. Times are compared with the newest Silver data, not the
wall clock: the data is from 2013.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from onering_assets.checks.names import KEY_UNIQUE, NOT_EMPTY, VALUE_RANGES
from onering_assets.checks.outcome import Outcome
from onering_assets.checks.specs import CheckDecl
from onering_assets.features.views import EVENT_TIMESTAMP, View

NULL_RATES = "null_rates"
FRESHNESS = "freshness"
ONLINE_CONSISTENCY = "online_consistency"
NOT_AFTER_INPUTS = "not_after_inputs"
SAMPLE_ENTITIES = 25


def _value_checks(view: View) -> list[CheckDecl]:
    nulls = ", ".join(f"{f.name} {f.max_null_pct:g}%" for f in view.features)
    ranges = ", ".join(f"{f.name} {f.range[0]:g}..{f.range[1]:g}" for f in view.features if f.range)
    return [
        CheckDecl(NULL_RATES, True, f"Null share per feature at most as declared ({nulls})."),
        CheckDecl(VALUE_RANGES, True, f"Every value lies in its declared range ({ranges})."),
    ]


def source_checks(view: View) -> list[CheckDecl]:
    """Run on the computed rows before they are written: a failure writes nothing."""
    keys = ", ".join((*view.join_keys, EVENT_TIMESTAMP))
    return [
        CheckDecl(NOT_EMPTY, True, "The SQL computed at least one row."),
        CheckDecl(KEY_UNIQUE, True, f"One row per ({keys})."),
        *_value_checks(view),
        CheckDecl(
            NOT_AFTER_INPUTS,
            True,
            "No row is stamped after its inputs were known (the newest Silver data: for "
            "flights the day after the newest flight date, for weather an hour after the newest "
            "hour's label).",
        ),
    ]


def view_checks(view: View) -> list[CheckDecl]:
    """Run on the published offline rows before Feast applies and materializes them."""
    return [
        *_value_checks(view),
        CheckDecl(
            FRESHNESS,
            False,
            f"The newest row is at most {view.freshness_hours:g} h older than the newest "
            "Silver data it is computed from (not the wall clock: the data is from 2013).",
        ),
        CheckDecl(
            ONLINE_CONSISTENCY,
            True,
            f"For a sample of up to {SAMPLE_ENTITIES} entities, the online store holds "
            "exactly the newest offline row's values.",
        ),
    ]


def not_empty(rows: pa.Table, view: View) -> Outcome:
    if rows.num_rows == 0:
        return Outcome.failed(NOT_EMPTY, f"{view.name}: the SQL computed no rows", [view.name])
    return Outcome(NOT_EMPTY, True, f"{rows.num_rows} rows", metadata={"rows": rows.num_rows})


def key_unique(rows: pa.Table, view: View) -> Outcome:
    keys = [*view.join_keys, EVENT_TIMESTAMP]
    counts = rows.group_by(keys).aggregate([([], "count_all")])
    dupes = counts.filter(pa.compute.greater(counts["count_all"], 1))  # type: ignore[attr-defined]
    if dupes.num_rows:
        sample = dupes.slice(0, 5).to_pylist()
        return Outcome.failed(
            KEY_UNIQUE,
            f"{dupes.num_rows} ({', '.join(keys)}) appear more than once, e.g. {sample[0]}",
            sample,
        )
    return Outcome(KEY_UNIQUE, True, f"{rows.num_rows} rows, one per ({', '.join(keys)}).")


def _newest(rows: pa.Table) -> datetime | None:
    stamps = rows.column(EVENT_TIMESTAMP).to_pandas()
    return None if stamps.empty else stamps.max().to_pydatetime()


def not_after_inputs(rows: pa.Table, known: datetime) -> Outcome:
    """No row stamped after ``known``, the moment the newest input data was complete."""
    stamps = rows.column(EVENT_TIMESTAMP).to_pandas()
    late = stamps[stamps > known]
    if len(late):
        return Outcome.failed(
            NOT_AFTER_INPUTS,
            f"{len(late)} rows are stamped after the newest input data ({known.isoformat()}), "
            f"up to {late.max().isoformat()}: their values could not have been known then",
            [str(s) for s in late.head(5)],
            {"inputs_known_at": known.isoformat()},
        )
    return Outcome(
        NOT_AFTER_INPUTS,
        True,
        f"every row is stamped at or before the newest input data ({known.isoformat()}).",
        metadata={"inputs_known_at": known.isoformat()},
    )


def missing_count(column: pa.ChunkedArray) -> int:
    """Nulls, and NaN in a float column (pandas, Feast and serving read both as missing)."""
    missing = column.null_count
    if pa.types.is_floating(column.type):
        missing += int(pa.compute.sum(pa.compute.is_nan(column)).as_py() or 0)  # type: ignore[attr-defined]
    return missing


def null_rates(rows: pa.Table, view: View) -> Outcome:
    """Each feature's share of missing values (null or NaN) against its declared limit."""
    total = max(rows.num_rows, 1)
    rates = {f.name: 100 * missing_count(rows.column(f.name)) / total for f in view.features}
    over = [
        f"{f.name} {rates[f.name]:.2f}% > {f.max_null_pct:g}%"
        for f in view.features
        if rates[f.name] > f.max_null_pct
    ]
    meta = {"null_pct": {k: round(v, 3) for k, v in rates.items()}}
    if over:
        return Outcome.failed(
            NULL_RATES, f"null share above the declared limit: {'; '.join(over)}", over, meta
        )
    return Outcome(NULL_RATES, True, "every feature's null share is within its limit.", 0, (), meta)


def value_ranges(rows: pa.Table, view: View) -> Outcome:
    problems: list[str] = []
    for feature in view.features:
        if feature.range is None:
            continue
        lo, hi = feature.range
        values = rows.column(feature.name).to_pandas().dropna()
        bad = values[(values < lo) | (values > hi) | values.isin([math.inf, -math.inf])]
        if len(bad):
            problems.append(
                f"{feature.name}: {len(bad)} value(s) outside {lo:g}..{hi:g} "
                f"(min {bad.min():g}, max {bad.max():g})"
            )
    if problems:
        return Outcome.failed(VALUE_RANGES, "; ".join(problems), problems)
    return Outcome(VALUE_RANGES, True, "every value lies in its declared range.")


def freshness(rows: pa.Table, view: View, inputs_newest: datetime) -> Outcome:
    newest = _newest(rows)
    meta = {"inputs_newest": inputs_newest.isoformat(), "newest_row": str(newest)}
    allowed = timedelta(hours=view.freshness_hours)
    if newest is None or inputs_newest - newest > allowed:
        behind = "no rows" if newest is None else f"{inputs_newest - newest} behind"
        return Outcome.failed(
            FRESHNESS,
            f"the newest row ({newest}) is {behind} the newest Silver data "
            f"({inputs_newest.isoformat()}); allowed {view.freshness_hours:g} h: rebuild "
            f"features/{view.name}_source",
            [str(newest)],
            meta,
        )
    return Outcome(
        FRESHNESS,
        True,
        f"the newest row is {inputs_newest - newest} behind the Silver data.",
        metadata=meta,
    )


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or (isinstance(a, float) and math.isnan(a))) and (
            b is None or (isinstance(b, float) and math.isnan(b))
        )
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def newest_per_entity(rows: pa.Table, view: View) -> list[dict[str, Any]]:
    """The newest offline row of each entity, sorted by key."""
    frame = rows.to_pandas().sort_values([*view.join_keys, EVENT_TIMESTAMP], kind="stable")
    newest = frame.drop_duplicates(list(view.join_keys), keep="last")
    return newest.to_dict("records")


def sample_entities(newest: Sequence[dict[str, Any]], size: int = SAMPLE_ENTITIES) -> list[int]:
    """Indexes of an even spread of entities (deterministic, so a failure reproduces)."""
    step = max(1, math.ceil(len(newest) / size))
    return list(range(0, len(newest), step))[:size]


def online_consistency(
    view: View, expected: Sequence[dict[str, Any]], online: dict[str, list[Any]]
) -> Outcome:
    """``online`` (columns, one value per expected row) against the newest offline rows."""
    problems = []
    for i, row in enumerate(expected):
        entity = "/".join(str(row[k]) for k in view.join_keys)
        for feature in view.feature_names:
            got, want = online[feature][i], row[feature]
            if not _same(got, want):
                problems.append(f"{entity} {feature}: online {got!r}, offline {want!r}")
    meta = {"entities_sampled": len(expected)}
    if problems:
        return Outcome.failed(
            ONLINE_CONSISTENCY,
            f"{len(problems)} online value(s) differ from the newest offline row: "
            f"{'; '.join(problems[:3])}",
            problems,
            meta,
        )
    return Outcome(
        ONLINE_CONSISTENCY,
        True,
        f"{len(expected)} sampled entities: online equals the newest offline row.",
        metadata=meta,
    )
