"""Streaming: flight events from Pulsar into Bronze; Flink jobs over Silver (docs/streaming.md)."""

import dagster as dg


def defs() -> dg.Definitions:
    from onering_assets.stream.assets import build_stream_asset
    from onering_assets.stream.flink_assets import build_flink_assets
    from onering_assets.stream.silver_sensor import JOB, stream_to_silver

    return dg.Definitions(
        assets=[build_stream_asset(), build_flink_assets()],
        jobs=[JOB],
        sensors=[stream_to_silver],  # a landed batch rebuilds Silver flights for its months
    )
