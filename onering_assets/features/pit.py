"""The point-in-time join behind historical retrieval, in plain pandas (no Feast here).

For each entity row and view: the view's newest row for the same keys stamped at or before
the row's timestamp and no older than the view's ttl (ties: the newest ``created``); none
→ the features are null. Entity rows are all kept, in their order. ``pd.merge_asof`` does
it in one sorted pass per view: historical retrieval of the year's 336,776 flights from
the three views takes 2.4 s (files read included), where Feast's dask store, which joins
every key's whole history first, took 250 s for 10,000 flights on a loaded 2-core machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

ROW = "__onering_row"
STAMP = "__onering_feature_ts"


@dataclass(frozen=True)
class ViewRows:
    """One view's offline rows and how to join them.

    Attributes:
        rows: join keys, ``timestamp``, optionally ``created``, and the features.
        keys: the join keys (shared with the entity frame).
        timestamp: the rows' event-timestamp column.
        created: the rows' created-timestamp column (a tie-break), if any.
        features: the feature columns to bring in.
        ttl: the oldest a row may be relative to the entity row (``None``: any age).
        output: the output name of each feature (e.g. ``view__feature``).
    """

    rows: pd.DataFrame
    keys: Sequence[str]
    timestamp: str
    created: str | None
    features: Sequence[str]
    ttl: timedelta | None
    output: dict[str, str]


def utc(column: pd.Series) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]`` (naive ones are taken to be UTC)."""
    stamps = pd.to_datetime(column)
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _latest_rows(view: ViewRows) -> pd.DataFrame:
    """One row per keys and timestamp (the newest created), keys as text, sorted by time."""
    created = [view.created] if view.created else []
    right = pd.DataFrame(view.rows.loc[:, [*view.keys, view.timestamp, *created, *view.features]])
    right[STAMP] = utc(pd.Series(right[view.timestamp]))
    right = right.sort_values(by=[STAMP, *created], kind="stable")
    right = right.drop_duplicates(subset=[*view.keys, STAMP], keep="last")
    for key in view.keys:
        right[key] = right[key].astype(object)
    return pd.DataFrame(right.loc[:, [*view.keys, STAMP, *view.features]])


def _join_one(left: pd.DataFrame, ts: str, view: ViewRows) -> pd.DataFrame:
    right = _latest_rows(view)
    probe = pd.DataFrame(left.loc[:, [ROW, ts, *view.keys]])
    for key in view.keys:
        probe[key] = probe[key].astype(object)
    # merge_asof cannot match a null key: those rows get no features.
    usable = probe.dropna(subset=list(view.keys)).sort_values(by=ts, kind="stable")
    joined = pd.merge_asof(
        usable,
        right,
        left_on=ts,
        right_on=STAMP,
        by=list(view.keys),
        direction="backward",
        allow_exact_matches=True,
    )
    if view.ttl is not None:
        stale = joined[STAMP] < joined[ts] - pd.Timedelta(view.ttl)
        joined.loc[stale, list(view.features)] = None
    features = pd.DataFrame(joined.set_index(ROW).loc[:, list(view.features)])
    return features.rename(columns=dict(view.output))


def point_in_time_join(entity_df: pd.DataFrame, ts: str, views: Sequence[ViewRows]) -> pd.DataFrame:
    """``entity_df`` with every view's features as of each row's ``ts`` (UTC): rows and index kept.

    Raises:
        KeyError: the entity frame lacks a view's join key or the timestamp column.
    """
    missing = sorted({k for v in views for k in v.keys if k not in entity_df} - {ts})
    if missing or ts not in entity_df:
        raise KeyError(
            f"the entity frame needs the columns {', '.join(missing or [ts])} "
            f"(it has {', '.join(map(str, entity_df.columns))})"
        )
    left = entity_df.reset_index(drop=True)
    left[ts] = utc(pd.Series(left[ts]))
    left[ROW] = range(len(left))
    result = left.drop(columns=[ROW])
    for view in views:
        features = _join_one(left, ts, view)
        result = result.join(features.reindex(range(len(left))))
    result.index = entity_df.index
    return result
