"""Reading features back: point-in-time rows for training and drift, online rows for serving.

Training, serving and drift import these (never the assets). A prediction is made two
hours before the scheduled departure, so an entity row's ``event_timestamp`` is
``sched_dep_at - 2 h`` in UTC, and each view contributes its newest row stamped at or before
it (and within the view's ttl); a view with no such row gives nulls, never a later row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from onering_assets.errors import ConfigError
from onering_assets.features.views import EVENT_TIMESTAMP, load_views
from onering_assets.resources.feast import FeastResource
from onering_assets.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

MATERIALIZE_HINT = "run `onering materialize --select 'group:features'` first"


def feature_store(settings: Settings) -> FeatureStore:
    """The profile's Feast store (imports Feast: seconds, once per process)."""
    return FeastResource.for_settings(settings).store()


def feature_refs() -> list[str]:
    """Every declared feature, as ``view:feature`` (views.yml order)."""
    return list(load_views().refs)


def _not_applied(err: Exception) -> ConfigError:
    return ConfigError(f"The feature store has no such view ({err}); {MATERIALIZE_HINT}.")


def _open(settings: Settings | None) -> FeatureStore:
    if settings is None:
        raise ConfigError("historical_features: give the profile's settings or an open store.")
    return feature_store(settings)


def historical_features(
    settings: Settings | None,
    entity_df: pd.DataFrame,
    refs: Sequence[str] | None = None,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """``entity_df`` with the features joined as of each row's ``event_timestamp``.

    Args:
        settings: which profile's store; may be None when ``store`` is given.
        entity_df: ``carrier``, ``origin``, ``dest`` and ``event_timestamp`` (tz-aware UTC,
            ``sched_dep_at - 2 h``); any other column is passed through.
        refs: ``view:feature`` references (default: every declared feature).
        store: an open store, to skip opening one.

    Returns:
        One row per entity row, in the same order and index, with one column per feature
        (its bare name); nulls where a view has no row within its ttl.

    Raises:
        ValueError: a needed column is missing or the timestamps are not tz-aware.
        ConfigError: the views were never applied to this store, or neither ``settings``
            nor ``store`` was given.
    """
    import pandas as pd
    from feast.errors import FeastObjectNotFoundException

    refs = list(refs or feature_refs())
    views = load_views()
    wanted = {ref.split(":", 1)[0] for ref in refs}
    keys = [k for v in views.views if v.name in wanted for k in v.join_keys]
    missing = [c for c in dict.fromkeys([*keys, EVENT_TIMESTAMP]) if c not in entity_df]
    if missing:
        raise ValueError(
            f"historical_features: the entity frame lacks {', '.join(missing)} "
            f"(it has {', '.join(map(str, entity_df.columns))})."
        )
    stamps = entity_df[EVENT_TIMESTAMP]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"historical_features: {EVENT_TIMESTAMP} must be tz-aware UTC timestamps "
            f"(sched_dep_at - 2 h), not {stamps.dtype}."
        )
    store = store if store is not None else _open(settings)
    try:
        job = store.get_historical_features(
            entity_df=entity_df.reset_index(drop=True), features=refs
        )
    except FeastObjectNotFoundException as err:
        raise _not_applied(err) from None
    result = job.to_df()
    result.index = entity_df.index
    return result


def online_features(
    store: FeatureStore, rows: Sequence[dict[str, Any]], refs: Sequence[str] | None = None
) -> dict[str, list[Any]]:
    """The newest materialized features for each entity row, as columns.

    Args:
        store: an open store (open it once per process with ``feature_store``).
        rows: ``{"carrier": …, "origin": …, "dest": …}`` per request.
        refs: ``view:feature`` references (default: every declared feature).

    Returns:
        Column name → one value per row (the join keys too); ``None`` where the online
        store holds nothing for the entity (an unknown carrier or route).
    """
    from feast.errors import FeastObjectNotFoundException

    try:
        response = store.get_online_features(
            features=list(refs or feature_refs()), entity_rows=list(rows)
        )
    except FeastObjectNotFoundException as err:
        raise _not_applied(err) from None
    return response.to_dict()
