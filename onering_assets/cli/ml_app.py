"""`onering app`: the Streamlit mini-app (a flight's late-arrival probability, and drift).

Runs ``streamlit run platform/ml/app/app.py`` on 127.0.0.1 in the foreground; Ctrl-C stops
it. The app asks the prediction service that `onering serve` starts (``--endpoint`` or
``ONERING_SERVE_URL``, default http://127.0.0.1:3001) and reads drift reports from the lake.

Not named ``cli/app.py``: importing a submodule ``onering_assets.cli.app`` would rebind the
package's ``app`` (the Typer application ``main()`` calls) to the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Annotated

import typer

from airflow_bridge.processes import die_with_parent
from onering_assets.cli.common import app, err, require_free_port
from onering_assets.settings import PLATFORM_DIR

APP_FILE = PLATFORM_DIR / "ml" / "app" / "app.py"
DEFAULT_PORT = 8501


def command(port: int) -> list[str]:
    """``streamlit run`` on the app, bound to 127.0.0.1, headless, without usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_FILE),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


@app.command("app")
def run_app(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = DEFAULT_PORT,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="The prediction service's URL (default: ONERING_SERVE_URL, "
            "else http://127.0.0.1:3001).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the Streamlit app: pick or type a flight, see its late-arrival probability."""
    from onering_assets.ml.app_support import ENDPOINT_ENV
    from onering_assets.ml.app_support import endpoint as default_endpoint

    require_free_port("127.0.0.1", port, "the Streamlit app")
    env = os.environ.copy()
    env[ENDPOINT_ENV] = endpoint or default_endpoint(env)
    err.print(
        f"Streamlit app on http://127.0.0.1:{port}, asking {env[ENDPOINT_ENV]} (Ctrl-C to stop)",
        highlight=False,
        soft_wrap=True,
    )
    # Streamlit dies with this process however it ends (SIGTERM left it serving before).
    code = subprocess.call(command(port), env=env, preexec_fn=die_with_parent(signal.SIGTERM))
    raise typer.Exit(code)
