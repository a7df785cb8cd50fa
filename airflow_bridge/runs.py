"""How a task runs Dagster (in_process, subprocess) and what the run's summary means.

Every mode produces the summary of ``onering materialize --json``
(:meth:`onering_assets.summary.RunSummary.to_dict`) and :func:`verdict` decides the task's
outcome from it the same way for all of them. Nothing here imports Dagster at DAG parse
time: ``in_process`` imports OneRing's runner when the task runs, ``subprocess`` runs the
``onering`` CLI of a configured interpreter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from airflow_bridge.errors import (
    BridgeError,
    ChecksFailedError,
    InvalidRunRequestError,
    NothingSelectedError,
    RunFailedError,
)
from airflow_bridge.processes import die_with_parent

log = logging.getLogger(__name__)
# Lines of the CLI's stderr that say what happened with the catalog (lineage/publish.py).
CATALOG_LINES = ("catalog:", "publishing run ")
# `onering materialize|check` exit codes (documented in onering_assets/cli/run.py).
EXIT_INVALID = 2
EXIT_NOTHING_SELECTED = 3
# How long a SIGTERMed CLI gets to cancel its Dagster run before it is killed.
KILL_GRACE_S = 20.0


def failure_message(summary: dict[str, Any]) -> str:
    """Each failed blocking check and failed step, one per line."""
    lines = [f"Dagster run {summary.get('run_id')} failed ({summary.get('status', 'FAILURE')}):"]
    lines += [
        f"- check {c['asset']}:{c['check']} failed: {c['description']}"
        for c in summary.get("checks", [])
        if not c["passed"] and c.get("blocking", True)
    ]
    lines += [f"- step {f}" for f in summary.get("failures", [])]
    return "\n".join(lines)


def verdict(summary: dict[str, Any]) -> None:
    """Raise unless the run succeeded with no failed blocking check.

    Raises:
        ChecksFailedError: blocking checks failed (also in a checks-only run, which Dagster
            itself counts as a success): re-running the same data fails the same way.
        RunFailedError: the run failed for any other reason; a retry may succeed.
    """
    failed_checks = summary.get("failed_checks")
    if failed_checks is None:  # a summary from before the classification existed
        failed_checks = [
            f"{c['asset']}:{c['check']}"
            for c in summary.get("checks", [])
            if not c["passed"] and c.get("blocking", True)
        ]
    if failed_checks or (not summary["success"] and summary.get("retryable") is False):
        raise ChecksFailedError(failure_message(summary))
    if not summary["success"]:
        raise RunFailedError(failure_message(summary))


def run_in_process(
    keys: Sequence[str],
    first: str | None,
    last: str | None,
    tags: dict[str, str],
    what: str,
    *,
    select: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """``what``: ``assets`` (with checks), ``assets_only`` or ``checks`` (alone)."""
    from onering_assets.errors import ConfigError
    from onering_assets.errors import NothingSelectedError as NoneSelectedError
    from onering_assets.runner import run_keys

    try:
        summary = run_keys(
            list(keys), first, last, tags=tags, what=what, select=select, run_id=run_id
        )
    except NoneSelectedError as err:
        raise NothingSelectedError(str(err)) from err
    except ConfigError as err:
        raise InvalidRunRequestError(str(err)) from err
    return summary.to_dict()


def cli_selection(keys: Sequence[str], select: str | None) -> str:
    """The task's keys as a Dagster selection, narrowed by a conf ``select`` if any."""
    own = " or ".join(f'key:"{k}"' for k in keys)
    return f"({select}) and ({own})" if select else own


def cli_command(
    python: str,
    keys: Sequence[str],
    first: str | None,
    last: str | None,
    tags: dict[str, str],
    what: str,
    select: str | None = None,
) -> list[str]:
    """The ``onering`` command line that runs one task."""
    cli = [python, "-m", "onering_assets.cli"]
    selection = cli_selection(keys, select)
    if what == "checks":
        cmd = [*cli, "check", "--select", selection, "--json"]
    else:
        cmd = [*cli, "materialize", "--select", selection, "--no-upstream", "--json"]
        if first and last:
            cmd += ["--from", first, "--to", last]
        if what == "assets_only":
            cmd.append("--no-checks")
    for key, value in sorted(tags.items()):
        cmd += ["--tag", f"{key}={value}"]
    return cmd


class CliRun:
    """One ``onering`` CLI child per task, terminable from ``on_kill``."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.proc: subprocess.Popen[str] | None = None

    def run(self) -> dict[str, Any]:
        """Run the CLI; its summary, or the bridge error its exit code stands for."""
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own group: on_kill stops it and its children
            preexec_fn=die_with_parent(signal.SIGTERM),  # when the task process dies
        )
        stdout, stderr = self.proc.communicate()
        code = self.proc.returncode
        # The run's catalog lines ("publishing run …", "catalog: … stays pending") belong in
        # the task log even when the run succeeds and its stderr is otherwise dropped.
        for line in stderr.splitlines():
            if line.startswith(CATALOG_LINES):
                log.log(
                    logging.WARNING if line.startswith("catalog:") else logging.INFO, "%s", line
                )
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if lines:
            return json.loads(lines[-1])
        message = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        if code == EXIT_NOTHING_SELECTED:
            raise NothingSelectedError(message)
        if code == EXIT_INVALID:
            raise InvalidRunRequestError(message)
        # Died before printing a summary (killed, crashed, store not reachable): retryable.
        raise RunFailedError(f"`onering` exited {code} without a summary:\n{stderr[-2000:]}")

    def terminate(self, grace_s: float = KILL_GRACE_S) -> None:
        """SIGTERM the CLI (it cancels its Dagster run), SIGKILL it after ``grace_s``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)

        def kill_if_alive() -> None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)

        # on_kill runs in a signal handler while run() reads the child's output: it must
        # not block here, so the escalation waits on a timer thread.
        timer = threading.Timer(grace_s, kill_if_alive)
        timer.daemon = True
        timer.start()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


__all__ = ["BridgeError", "CliRun", "cli_command", "run_in_process", "verdict"]
