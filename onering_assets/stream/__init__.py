"""Streaming: flight events from Pulsar into Bronze; Flink jobs over Silver (docs/streaming.md)."""

import dagster as dg


def defs() -> dg.Definitions:
    from onering_assets.stream.assets import build_stream_asset
    from onering_assets.stream.flink_assets import build_flink_assets

    return dg.Definitions(assets=[build_stream_asset(), build_flink_assets()])
