"""Gold: curated marts in Postgres, DDL as Liquibase changelogs, published in one transaction."""

import dagster as dg

from onering_assets.catalog import load_catalog
from onering_assets.gold.assets import build_gold_asset


def defs() -> dg.Definitions:
    return dg.Definitions(assets=[build_gold_asset(t) for t in load_catalog().gold])
