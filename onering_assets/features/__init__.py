"""Features: Feast feature views as assets, computed from Silver, checked, materialized.

Declared from ``platform/featurestore/feast_repo/views.yml``; Feast is not imported here.
"""

import dagster as dg

from onering_assets.features.assets import build_source_asset, build_view_asset
from onering_assets.features.views import load_views


def defs() -> dg.Definitions:
    views = load_views().views
    return dg.Definitions(
        assets=[*(build_source_asset(v) for v in views), *(build_view_asset(v) for v in views)]
    )
