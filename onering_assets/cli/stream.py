"""`onering stream`: replay flights to Pulsar, and the local broker's status and stop."""

from __future__ import annotations

from typing import Annotated

import typer

from onering_assets.cli.common import app, err, out, refuse
from onering_assets.errors import ConfigError, OneRingError
from onering_assets.settings import Settings

stream_app = typer.Typer(
    help="Flight events on Pulsar (local: pulsar-lite under the state folder).",
    no_args_is_help=True,
)
app.add_typer(stream_app, name="stream")


def _pulsar(settings: Settings):
    from onering_assets.stream.resource import pulsar_resource

    return pulsar_resource(settings)


@stream_app.command()
def replay(
    month: Annotated[
        list[str] | None,
        typer.Option("--month", "-m", help="Replay only this month (repeatable), e.g. 2013-03."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(min=0.1, help="Messages per second (default: as fast as it can)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many flights.")] = None,
) -> None:
    """Publish the landed flights to the topic as keyed JSON events."""
    from onering_assets.partitions import MONTHLY
    from onering_assets.resources import SourceResource
    from onering_assets.stream.replay import replay as publish
    from onering_assets.stream.resource import stream_url

    try:
        settings = Settings.from_env()
        unknown = sorted(set(month or []) - set(MONTHLY.get_partition_keys()))
        if unknown:
            raise ConfigError(f"No month {', '.join(unknown)}; months run 2013-01 to 2013-12.")
        pulsar = _pulsar(settings)
        url = stream_url(settings)
        source = SourceResource(path=str(settings.source_dir) if settings.source_dir else None)
        landing = source.land("flights")
        err.print(f"replaying {landing.label} to {pulsar.topic} on {url}", highlight=False)
        built = _months_in_bronze(settings, set(month or MONTHLY.get_partition_keys()))
        if built:
            err.print(
                f"note: {', '.join(built)} already in Bronze (the batch path's file): the stream "
                "asset recognises those flights as landed and lands nothing new from them; "
                "replay into a state folder without them (ONERING_STATE_DIR) to see them land",
                highlight=False,
                soft_wrap=True,
            )
        done = publish(
            url,
            pulsar.topic,
            landing.table,
            landing.lines,
            landing.label,
            months=set(month) if month else None,
            rate=rate,
            limit=limit,
            progress=lambda line: err.print(line, highlight=False),
        )
    except OneRingError as e:
        raise refuse(e) from None
    out.print(
        f"published {done.published:,} flights in {done.seconds:.1f} s ({done.rate:,.0f}/s); "
        "land them with `onering materialize --select 'key:\"stream/flights_events\"'`",
        highlight=False,
        soft_wrap=True,
    )


def _months_in_bronze(settings: Settings, months: set[str]) -> list[str]:
    """The months whose batch-path file is in the local lake (compose's lake is not read)."""
    if settings.profile != "local":
        return []
    folder = settings.lake_dir / "bronze" / "flights"
    return sorted(m for m in months if (folder / f"month={m}" / "data.parquet").exists())


@stream_app.command()
def status() -> None:
    """Where the topic is, and whether the local broker runs."""
    from onering_assets.stream import broker
    from onering_assets.stream.resource import named_broker

    settings = Settings.from_env()
    pulsar = _pulsar(settings)
    if settings.profile != "local" or named_broker():
        url = named_broker() or "unset (set ONERING_PULSAR_URL)"
        out.print(f"broker: {url} (ONERING_PULSAR_URL)\ntopic: {pulsar.topic}")
        return
    folder = settings.state_dir / "pulsar"
    found = broker.running(folder)
    where = f"{found.url} (pid {found.pid})" if found else "not running (starts on first use)"
    out.print(f"broker: local pulsar-lite, {where}\ndata: {folder}\ntopic: {pulsar.topic}")


@stream_app.command()
def stop() -> None:
    """Stop the local broker (its topics are kept; the next use starts it again)."""
    from onering_assets.stream import broker
    from onering_assets.stream.resource import named_broker

    settings = Settings.from_env()
    stopped = broker.stop(settings.state_dir / "pulsar")
    out.print("stopped the local broker" if stopped else "the local broker was not running")
    if named_broker():
        out.print(f"(ONERING_PULSAR_URL names the broker in use, {named_broker()}: not stopped)")
