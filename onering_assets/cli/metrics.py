"""`onering metrics show|serve`: Prometheus metrics read from the Dagster instance.

`serve` exposes ``/metrics`` for a Prometheus server to scrape (default 127.0.0.1:9464);
`show` prints one scrape's text. Both only read the instance: nothing in a run changes.
"""

from __future__ import annotations

import sys
import threading
from typing import Annotated

import typer

from onering_assets.cli.common import app, err, refuse, require_free_port
from onering_assets.errors import OneRingError
from onering_assets.settings import Settings

metrics_app = typer.Typer(
    help="Prometheus metrics of runs, materializations, rows and checks.", no_args_is_help=True
)
app.add_typer(metrics_app, name="metrics")


def _instance():
    from onering_assets.runner import instance_for

    try:
        return instance_for(Settings.from_env())
    except OneRingError as e:
        raise refuse(e) from None


@metrics_app.command("show")
def show() -> None:
    """Print the metrics once, in Prometheus' text format."""
    from onering_assets.observability.collector import exposition

    sys.stdout.write(exposition(_instance()))


@metrics_app.command("serve")
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but 127.0.0.1 exposes the metrics.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 9464,
) -> None:
    """Serve /metrics for Prometheus until Ctrl-C."""
    from onering_assets.observability.collector import serve as start

    instance = _instance()
    require_free_port(host, port, "the metrics exporter")
    start(instance, host, port)
    err.print(f"OneRing metrics on http://{host}:{port}/metrics (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
