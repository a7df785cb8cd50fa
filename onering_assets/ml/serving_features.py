"""The online feature lookup the predictor calls: the profile's Feast online store.

Through :mod:`onering_assets.features.retrieval` (what training and drift read with too).
Imports Feast when the lookup is opened (seconds), never at module import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from onering_assets.features.retrieval import feature_store, online_features
from onering_assets.ml.serving import OnlineLookup
from onering_assets.settings import Settings

# A row no store holds: the warm-up read at open finds nothing, and fails clearly if the
# views were never applied.
WARM_UP_ROW = {"carrier": "--", "origin": "---", "dest": "---"}


def online_lookup(settings: Settings, refs: Sequence[str]) -> OnlineLookup:
    """Online reads of ``refs`` from the profile's store, warmed by one read.

    The first read loads Feast's registry and opens the online store, so the first request
    does not pay for it.

    Raises:
        ConfigError: the feature views were never applied (says what to materialize).
    """
    store = feature_store(settings)
    online_features(store, [WARM_UP_ROW], refs)

    def lookup(refs: Sequence[str], rows: Sequence[Mapping[str, str]]) -> Mapping[str, Any]:
        return online_features(store, [dict(r) for r in rows], refs)

    return lookup
