"""`onering serve`: the BentoML prediction service on the champion model.

Runs ``bentoml serve platform/ml/bento_service`` in the foreground, bound to 127.0.0.1 by
default; Ctrl-C stops it. It first checks that the registry has a champion, so an empty
state folder gets one line saying what to materialize rather than a server traceback; a
service that cannot start for another reason (no online features) stops and says why.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from airflow_bridge.processes import die_with_parent
from onering_assets.cli.common import app, err, fail, refuse, require_free_port
from onering_assets.errors import OneRingError
from onering_assets.settings import Settings


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but 127.0.0.1 exposes the service.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 3001,
) -> None:
    """Serve late-arrival predictions: POST /predict and /predict_batch."""
    from onering_assets.ml.serving_app import ERROR_FILE_ENV
    from onering_assets.ml.serving_model import champion_version, registry_for
    from onering_assets.ml.serving_server import command, server_env

    try:
        settings = Settings.from_env()
        version = champion_version(registry_for(settings))
    except OneRingError as e:
        raise refuse(e) from None
    require_free_port(host, port, "the prediction service")
    err.print(
        f"flight_late_arrival version {version} on http://{host}:{port} "
        "(POST /predict, /predict_batch; Ctrl-C to stop)",
        highlight=False,
        soft_wrap=True,
    )
    with tempfile.TemporaryDirectory(prefix="onering-serve-") as tmp:
        error_file = Path(tmp) / "error"
        env = server_env(settings) | {ERROR_FILE_ENV: str(error_file)}
        # BentoML stops with this command however it ends: Ctrl-C reaches both (one process
        # group); a SIGTERM or SIGKILL of this process sends BentoML SIGINT (its clean stop).
        proc = subprocess.Popen(
            command(host, port), env=env, preexec_fn=die_with_parent(signal.SIGINT)
        )
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            code = proc.wait()
        if error_file.exists():  # the service could not start (e.g. no online features)
            raise fail(error_file.read_text())
    raise typer.Exit(code)
