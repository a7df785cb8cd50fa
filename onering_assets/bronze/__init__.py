"""Bronze: landed data as is, append-only, with ingestion metadata, in the lake."""

import dagster as dg

from onering_assets.bronze.assets import build_bronze_asset
from onering_assets.catalog import load_catalog


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[build_bronze_asset(t) for t in load_catalog().bronze])
