"""Silver: typed, cleaned, de-duplicated tables in ClickHouse, rejects kept with a reason."""

import dagster as dg

from onering_assets.catalog import load_catalog
from onering_assets.silver.assets import build_silver_asset


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[build_silver_asset(t) for t in load_catalog().silver])
