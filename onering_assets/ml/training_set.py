"""The training set: labelled flights with their features as of two hours before departure.

Entity rows are Silver's flights that have an arrival delay (cancelled and diverted flights
carry no label), each with ``event_timestamp = sched_dep_at - 2 h`` (UTC); the features come
from Feast's historical retrieval (``onering_assets.features.retrieval``), which joins each
view's newest row stamped at or before that moment. The result is written to the lake as
``ml/training_set/data.parquet``.

Its audit is independent of the join that built it: for every flight and view, the
feature values must equal those of some offline row of the same keys stamped at or before
the flight's prediction time. A value found only in later rows is a feature from the
future (``no_future_features`` fails, naming the flights); a value found in no row at all
did not come from the view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from onering_assets.checks.outcome import SAMPLE_ROWS, Outcome
from onering_assets.checks.specs import CheckDecl
from onering_assets.ml import inputs
from onering_assets.resources.lake import LakeResource

if TYPE_CHECKING:
    import pandas as pd
    from clickhouse_connect.driver.client import Client

LAYER = "ml"
TABLE = "training_set"
NO_FUTURE_FEATURES = "no_future_features"
LABEL_COVERAGE = "label_coverage"
MIN_COVERAGE_PCT = 90.0
FLIGHT_ID = ("flight_date", "carrier", "flight", "origin")
ROW = "__row"
STAMP = "__stamp"

# Seconds since the epoch: unambiguous, whatever timezone the client would render.
LABELLED_FLIGHTS_SQL = """
SELECT
    flight_date,
    carrier,
    flight,
    origin,
    dest,
    toUnixTimestamp(sched_dep_at) AS sched_dep_s,
    arr_delay
FROM silver.flights
WHERE arr_delay IS NOT NULL
ORDER BY sched_dep_at, carrier, flight, origin
"""

DECLS = [
    CheckDecl(
        NO_FUTURE_FEATURES,
        True,
        "Every flight's features equal those of an offline row of the same keys stamped at or "
        "before its prediction time (sched_dep_at - 2 h): no value comes from the future. "
        "Checked against the views' offline rows, independently of the join that built it.",
    ),
    CheckDecl(
        LABEL_COVERAGE,
        True,
        "Labelled flights of both classes (late = arr_delay > 15), and every feature present "
        f"for at least {MIN_COVERAGE_PCT:g}% of them; the late share and coverage per feature "
        "and month are in the metadata.",
    ),
]


def labelled_flights(client: Client) -> pd.DataFrame:
    """Silver's flights that have a label, as entity rows (``event_timestamp`` added)."""
    import pandas as pd

    flights = client.query_df(LABELLED_FLIGHTS_SQL)
    flights["sched_dep_at"] = pd.to_datetime(flights.pop("sched_dep_s"), unit="s", utc=True)
    flights["flight_date"] = pd.to_datetime(flights["flight_date"]).dt.date
    for column in ("carrier", "origin", "dest"):
        flights[column] = flights[column].astype(object)
    frame = inputs.entity_frame(flights)
    frame[inputs.LABEL] = (frame["arr_delay"] > inputs.LATE_MINUTES).astype("int8")
    return frame


def write(lake: LakeResource, frame: pd.DataFrame) -> str:
    """Replace the published training set; return its path."""
    import pyarrow as pa

    return lake.write(LAYER, TABLE, None, pa.Table.from_pandas(frame, preserve_index=False))


def read(lake: LakeResource) -> pd.DataFrame:
    """The published training set (raises FileNotFoundError if never written)."""
    return lake.read(LAYER, TABLE).to_pandas()


@dataclass(frozen=True)
class ViewSpec:
    """What the audit needs of a feature view: its keys and feature columns."""

    name: str
    keys: tuple[str, ...]
    features: tuple[str, ...]


def future_features(
    frame: pd.DataFrame, views: list[ViewSpec], offline: Mapping[str, pd.DataFrame]
) -> Outcome:
    """``no_future_features``: each flight's values per view exist in a row stamped in time.

    ``offline`` maps a view's name to its offline rows (keys, ``event_timestamp``, features).
    A flight whose features of a view are all null used no row of it.
    """
    import pandas as pd

    future: list[dict[str, Any]] = []
    unexplained: list[dict[str, Any]] = []
    counts = {"future": 0, "unexplained": 0}
    checked: dict[str, int] = {}
    for view in views:
        earliest, used = _earliest_stamps(frame, view, offline[view.name])
        checked[view.name] = len(used)
        missing = pd.DataFrame(used.loc[earliest.isna()])
        ahead = pd.DataFrame(used.loc[earliest.notna() & (earliest > used[inputs.EVENT_TIMESTAMP])])
        counts["future"] += len(ahead)
        counts["unexplained"] += len(missing)
        future += _describe(ahead, view.name, earliest)
        unexplained += _describe(missing, view.name, None)
    meta: dict[str, Any] = {"flights_checked_by_view": checked, **counts}
    if counts["future"] or counts["unexplained"]:
        return Outcome(
            NO_FUTURE_FEATURES,
            False,
            f"{counts['future']} flight-view pair(s) use feature values first stamped after "
            f"the flight's prediction time; {counts['unexplained']} use values no offline "
            "row has",
            failing=counts["future"] + counts["unexplained"],
            sample=(future + unexplained)[:SAMPLE_ROWS],
            metadata=meta,
        )
    total = sum(checked.values())
    return Outcome(
        NO_FUTURE_FEATURES,
        True,
        f"{total} flight-view pairs: every value was stamped at or before sched_dep_at - 2 h",
        metadata=meta,
    )


def _earliest_stamps(
    frame: pd.DataFrame, view: ViewSpec, rows: pd.DataFrame
) -> tuple[pd.Series, pd.DataFrame]:
    """Per flight with values from ``view``: the earliest stamp of an offline row with them."""
    import pandas as pd

    columns = [*view.keys, *view.features]
    used = frame.loc[frame[list(view.features)].notna().any(axis=1)].copy()
    used[ROW] = used.index
    left = used[[ROW, *columns]].astype({f: "float64" for f in view.features})
    right = pd.DataFrame(
        {
            **{c: rows[c] for c in columns},
            STAMP: pd.to_datetime(rows[inputs.EVENT_TIMESTAMP], utc=True),
        }
    ).astype({f: "float64" for f in view.features})
    for key in view.keys:
        left[key], right[key] = left[key].astype(str), right[key].astype(str)
    # Equal values (nulls match nulls): the rows that could have supplied them.
    matches = left.merge(right, on=columns, how="left")
    earliest = matches.groupby(ROW)[STAMP].min().reindex(used[ROW])
    earliest.index = used.index
    return earliest, used


def _describe(rows: pd.DataFrame, view: str, earliest: pd.Series | None) -> list[dict]:
    ids = [c for c in FLIGHT_ID if c in rows.columns]
    found = []
    for index, row in rows.head(SAMPLE_ROWS).iterrows():
        item: dict[str, str | None] = {c: str(row[c]) for c in ids}
        item.update(view=view, predicted_at=str(row[inputs.EVENT_TIMESTAMP]))
        item["values_first_stamped"] = str(earliest[index]) if earliest is not None else None
        found.append(item)
    return found


def coverage(frame: pd.DataFrame, min_pct: float = MIN_COVERAGE_PCT) -> Outcome:
    """``label_coverage``: both classes present; each feature present for ``min_pct``%."""
    rows = len(frame)
    classes = frame[inputs.LABEL].nunique() if rows else 0
    present = {
        c: round(100.0 * frame[c].notna().mean(), 3) if rows else 0.0
        for c in inputs.feature_columns()
    }
    import pandas as pd

    month = pd.Series(frame["sched_dep_at"]).dt.tz_convert(inputs.TIMEZONE).dt.strftime("%Y-%m")
    by_month = pd.DataFrame(frame.groupby(month)[inputs.LABEL].agg(["count", "mean"]))
    meta = {
        "rows": rows,
        "late_pct": round(100.0 * float(frame[inputs.LABEL].mean()), 3) if rows else 0.0,
        "feature_present_pct": present,
        "rows_by_month": {str(m): int(n) for m, n in pd.Series(by_month["count"]).items()},
        "late_pct_by_month": {
            str(m): round(100.0 * float(v), 2) for m, v in pd.Series(by_month["mean"]).items()
        },
    }
    thin = {c: p for c, p in present.items() if p < min_pct}
    if classes < 2 or thin:
        reasons = [f"{rows} labelled flights with {classes} class(es)"] if classes < 2 else []
        reasons += [f"{c} present for {p:g}%" for c, p in thin.items()]
        return Outcome.failed(
            LABEL_COVERAGE,
            f"{'; '.join(reasons)} (need both classes and ≥ {min_pct:g}% per feature)",
            reasons,
            meta,
        )
    return Outcome(
        LABEL_COVERAGE,
        True,
        f"{rows} labelled flights, {meta['late_pct']:g}% late; every feature present for "
        f"≥ {min(present.values()):g}%",
        metadata=meta,
    )
