"""Streaming: flight events on Pulsar landed into Bronze (see docs/streaming.md)."""

import dagster as dg


def defs() -> dg.Definitions:
    from onering_assets.stream.assets import build_stream_asset

    return dg.Definitions(assets=[build_stream_asset()])
