"""Airbyte connections declared under platform/ingestion/airbyte/, one asset per stream."""

import dagster as dg


def defs() -> dg.Definitions:
    from onering_assets.airbyte.assets import build_airbyte_assets

    return dg.Definitions(assets=build_airbyte_assets())
