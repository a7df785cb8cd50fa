"""The `onering` command: one module per command group, composed here."""

from __future__ import annotations

import atexit
import os
import sys

from onering_assets.cli import (  # noqa: F401  (each registers its commands)
    airflow,
    apply,
    browse,
    catalog,
    env,
    gc,
    lineage,
    metrics,
    migrate,
    ml_app,
    plan,
    run,
    serve,
    sql,
    sqltest,
    stores,
    stream,
)
from onering_assets.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the command, then exit without tearing the interpreter down.

    Once GX and pandas are loaded, Python's module teardown at exit takes 1.3-1.4 s on this
    machine (measured: output printed -> process gone), which the Airflow bridge's
    subprocess mode pays on every task. All work is done and committed by then, so this
    runs the atexit handlers (logging flushes there), flushes stdout/stderr and leaves.
    """
    code: int | str | None = 0
    try:
        app()
    except SystemExit as done:
        code = done.code
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    os._exit(code or 0)
