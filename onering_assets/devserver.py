"""The Dagster UI on OneRing's code location, as a child process.

`onering dev` runs it in the foreground; the fixtures and benches that need a real
webserver use :func:`serving`, which owns the process from start to stop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from airflow_bridge.processes import stop_groups
from onering_assets.errors import OneRingError
from onering_assets.settings import PROJECT_ROOT

CODE_LOCATION = "onering_assets.definitions"


def command(port: int, *, daemon: bool = True) -> list[str]:
    """``dagster dev`` (webserver and daemon), or the webserver alone, on 127.0.0.1."""
    program = ["dagster", "dev"] if daemon else ["dagster_webserver"]
    return [sys.executable, "-m", *program, "-m", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(port)]


def answers(url: str) -> str | None:
    """``None`` once the webserver answers ``/server_info``; else what it is waiting for."""
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except OSError as err:
        return f"not answering yet ({type(err).__name__})"


@contextmanager
def serving(
    state_dir: Path,
    port: int,
    log_path: Path,
    *,
    daemon: bool = True,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120,
    ready: Callable[[str], str | None] = answers,
) -> Iterator[str]:
    """Run the UI on the instance under ``state_dir``; yield its URL once ``ready``; stop it.

    It runs in its own process group (the webserver's code server and the daemon with it),
    so stopping it stops them all.

    Raises:
        OneRingError: it exited, or was not ready within ``timeout_s``; with its log's end.
    """
    from onering_assets.runner import write_instance_config

    home = state_dir / "dagster"
    write_instance_config(home)
    full_env = {
        **(os.environ if env is None else env),
        "DAGSTER_HOME": str(home),
        "ONERING_STATE_DIR": str(state_dir),
    }
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command(port, daemon=daemon),
            cwd=PROJECT_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while (waiting := ready(url)) is not None:
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited {proc.returncode}" if proc.poll() is not None else "timed out"
                log_end = log_path.read_text(errors="replace")[-3000:]
                raise OneRingError(f"Dagster UI on {url} {why} ({waiting}):\n{log_end}")
            time.sleep(0.5)
        yield url
    finally:
        stop_groups([proc.pid])
        proc.wait()
