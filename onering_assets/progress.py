"""A concise console logger for CLI runs: one line per step and per failed check."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

LINE_CHARS = 400  # a failed check's text in a progress line (the summary prints it whole)

# Where progress lines go while a run executes. Dagster's compute-log capture points the
# process's fds 1 and 2 at a file during each step and copies that file back to the terminal
# with `tail -F`, which it terminates when the step ends: a line written just before may never
# arrive (dagster-io/dagster#23336 -- a run's last "ok" line went missing that way). `console()`
# keeps a duplicate of stderr's descriptor from before the run, so lines bypass the capture.
_console: list[TextIO] = []


@contextmanager
def console() -> Iterator[None]:
    """Progress lines of the runs started inside go to stderr as it is now, not via the capture."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stream with no descriptor (e.g. StringIO)
        yield
        return
    sys.stderr.flush()
    stream = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    _console.append(stream)
    try:
        yield
    finally:
        _console.remove(stream)
        stream.close()


class ProgressHandler(logging.Handler):
    """Turns Dagster events into progress lines; everything at WARNING and above passes through."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        line = self._line(event, step) if event is not None else None
        message = str(meta.get("orig_message", record.getMessage()))
        if event is None and message.startswith("Dependencies for step"):
            line = f"  skipped {step} (upstream failed)"  # Dagster logs this, no event
        elif message.startswith("check ") and " failed: " in message:
            line = None  # checks.specs.emit's log line; the evaluation event prints it
        elif line is None and event is None and record.levelno >= logging.WARNING:
            line = f"  ! {step}: {message}"
        if line:
            stream = _console[-1] if _console else sys.stderr
            stream.write(line + "\n")
            stream.flush()

    def _line(self, event: dg.DagsterEvent, step: str) -> str | None:
        kind = event.event_type_value
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            return f"  > {step} ..."
        elapsed = time.perf_counter() - self.started.get(step, time.perf_counter())
        if kind == "STEP_SUCCESS":
            return f"  ok {step} ({elapsed:.1f} s)"
        if kind == "STEP_FAILURE":
            return f"  FAILED {step} ({elapsed:.1f} s)"
        if kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if isinstance(data, AssetCheckEvaluation) and not data.passed:
                key = data.asset_key.to_user_string()
                warned = data.severity == dg.AssetCheckSeverity.WARN
                verdict = "check warned (non-blocking)" if warned else "check failed"
                text = data.description or ""  # whole in the summary; a line here
                text = text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"
                return f"  {verdict} {key}:{data.check_name}: {text}"
        if kind == "STEP_SKIPPED":
            return f"  skipped {step} (upstream failed)"
        return None


def _progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("onering.progress")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    if not log.handlers:
        log.addHandler(ProgressHandler())
    return log


progress_logger = dg.LoggerDefinition(
    _progress_logger, description="One line per step and per failed check, for the onering CLI."
)
