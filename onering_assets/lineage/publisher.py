"""Calling the OpenMetadata publisher, which runs in its own environment.

``python -m onering_catalog publish --document DOC.json`` in ``envs/openmetadata`` (the main
environment cannot import it) exits 0 (published), 2 (not retryable) or 3 (retryable), its
last stdout line a JSON summary. Each call here is bounded (its process group killed whole at
the time-out, and with its parent), exit 3 and time-outs are retried with backoff within a
deadline, and what it says is scrubbed of secrets before anyone sees it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from typing import Any

from airflow_bridge.processes import dying_with_parent
from onering_assets.errors import ConfigError
from onering_assets.settings import PROJECT_ROOT, CatalogSettings

EXIT_OK, EXIT_NOT_RETRYABLE, EXIT_RETRYABLE = 0, 2, 3
# Main-env variables that would leak its packages into the publisher's interpreter.
_NOT_INHERITED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")

_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")


def without_secrets(text: str) -> str:
    """``text`` without the token's value or a URL's ``user:password@``."""
    for name in ("ONERING_OPENMETADATA_JWT", "ONERING_OPENLINEAGE_API_KEY"):
        token = os.environ.get(name)
        if token:
            text = text.replace(token, "***")
    return _USERINFO.sub("", text)


def scrub(text: str, limit: int = 300) -> str:
    """One short line without secrets (``last_publish.json`` keeps it all, also scrubbed)."""
    line = " ".join(without_secrets(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _last_json(stdout: str) -> dict[str, Any]:

    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
            break
    return {}


def run_publisher(
    config: CatalogSettings, args: list[str], timeout_s: float
) -> tuple[int | None, dict[str, Any], str]:
    """One publisher call: exit code (``None``: timed out), JSON summary, one-line reason.

    The publisher gets its own process group, killed whole at the time-out.

    Raises:
        ConfigError: the publisher's interpreter does not exist.
    """
    python = config.python
    if not python.exists():
        raise ConfigError(
            f"the catalog publisher's environment is missing ({python}): run `make setup`, "
            "or point ONERING_CATALOG_PYTHON at its interpreter"
        )
    # Killed with its parent (an Airflow task), without a preexec_fn: this may run in a
    # code server's sensor thread.
    argv = dying_with_parent([str(python), "-m", "onering_catalog", *args], signal.SIGKILL)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
        env=_child_env(),
        start_new_session=True,  # its own group, killed whole at the time-out
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        return None, {}, f"the publisher did not finish within {timeout_s:.0f} s (killed)"
    except BaseException:  # interrupted (SIGTERM, Ctrl-C): leave no publisher behind
        _kill_group(proc)
        raise
    summary = _last_json(stdout)
    errors = summary.get("errors") or []
    reason = str(errors[0]) if errors else (stderr.strip().splitlines() or [""])[-1]
    return proc.returncode, summary, scrub(reason)


def call_publisher(
    config: CatalogSettings, args: list[str], deadline: float
) -> tuple[int | None, dict[str, Any], str, int]:
    """The publisher with bounded retries: exit 3 and time-outs again, with backoff.

    Returns the last attempt's code, summary and reason, and the number of attempts.
    """
    code, summary, reason, calls = None, {}, "no time left in the budget", 0
    for attempt in range(1, config.attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining < 1.0:
            break
        calls = attempt
        code, summary, reason = run_publisher(config, args, min(config.timeout_s, remaining))
        if code not in (EXIT_RETRYABLE, None):
            break
        pause = config.backoff_s * 2 ** (attempt - 1)
        if attempt == config.attempts or time.monotonic() + pause >= deadline - 1.0:
            break
        time.sleep(pause)
    return code, summary, reason, calls
