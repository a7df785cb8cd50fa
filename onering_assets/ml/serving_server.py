"""Running the BentoML prediction service as a child process.

`onering serve` runs :func:`command` in the foreground; the tests and ``bench/ml.py`` use
:func:`running`, which owns the server from start to stop (its own process group, stopped
as one by :func:`onering_assets.devserver.stop`).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from onering_assets.settings import PLATFORM_DIR, Settings

SERVICE_DIR = PLATFORM_DIR / "ml" / "bento_service"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3001
START_TIMEOUT_S = 180.0


def command(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> list[str]:
    """``bentoml serve`` on the service folder (its ``bentofile.yaml``)."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        str(SERVICE_DIR),
        "--host",
        host,
        "--port",
        str(port),
    ]


def server_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` plus what the service needs: the state folder, and BentoML kept local.

    BentoML's usage tracking is off (nothing may leave the machine), its home is under the
    state folder rather than ``~/bentoml``, and MLflow draws no download progress bars.
    """
    env = {**(os.environ if base is None else base)}
    env |= {
        "ONERING_STATE_DIR": str(settings.state_dir),
        "ONERING_PROFILE": settings.profile,
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.setdefault("BENTOML_HOME", str(settings.state_dir / "bentoml"))
    return env


def ready(url: str) -> str | None:
    """``None`` once the service answers ``/readyz``; else what it is waiting for."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except OSError as err:
        return f"not answering yet ({type(err).__name__})"


@dataclass(frozen=True)
class Server:
    """A running service: where it answers, and the pid of its process tree's root."""

    url: str
    pid: int


@contextmanager
def running(
    settings: Settings,
    port: int,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[Server]:
    """Serve on 127.0.0.1:``port``; yield it once ready; stop it (and its workers).

    Raises:
        OneRingError: it exited or was not ready within ``timeout_s``; with its log's end.
    """
    from onering_assets.devserver import launched

    url = f"http://{DEFAULT_HOST}:{port}"
    started = launched(
        command(DEFAULT_HOST, port),
        server_env(settings, env),
        log_path,
        url,
        ready,
        "prediction service",
        timeout_s,
        0.25,
    )
    with started as proc:
        yield Server(url, proc.pid)
