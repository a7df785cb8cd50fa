"""The catalog outbox: which runs still have to reach the catalog, and which already did.

Every run OneRing sees end (the runner's, and the sensor's for runs launched elsewhere) is
appended to ``<state>/catalog/pending``; a publish appends what it delivered to the ledger
``<state>/catalog/published``. A run is pending while it is in the first and not in the
second, so recording a run twice (the runner and the sensor both saw it) publishes it once.

Two locks (``flock``, released by the kernel when a holder dies):

- ``outbox.lock``, held for microseconds around each change of the two files, so an append
  is never lost to a compaction of ``pending``;
- ``publish.lock``, held for a whole publish, so two publishers never deliver the same run:
  the second waits, then finds the first one's runs in the ledger.

Standard library only: recording a run must stay cheap (see :meth:`Outbox.record`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from onering_assets.resources.locks import exclusive_flock

CATALOG_DIR = "catalog"
PUBLISHED = "published"
OPENMETADATA, OPENLINEAGE = "openmetadata", "openlineage"  # targets, each with its own ledger
MISSING = "missing"  # pending, but the Dagster instance no longer has the run


class PublishBusyError(TimeoutError):
    """Another process held the publish lock for the whole wait."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _flock(path: Path, timeout_s: float) -> contextlib.AbstractContextManager[int]:
    """Hold an exclusive ``flock`` on ``path``, waiting up to ``timeout_s`` seconds.

    Raises:
        PublishBusyError: still held by another process after ``timeout_s``.
    """
    return exclusive_flock(
        path,
        timeout_s,
        lambda: PublishBusyError(f"{path.name} is held by another publish after {timeout_s:g} s"),
        poll_s=0.05,
    )


class Outbox:
    """The pending runs and the ledger of published ones, in one folder.

    Args:
        folder: ``<state>/catalog`` (:func:`outbox_for`); created on first use.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pending_path = folder / "pending"
        self.ledger_path = folder / "published"
        self.last_path = folder / "last_publish.json"
        self.requests_path = folder / "requests.json"

    def _short_lock(self) -> Any:
        self.folder.mkdir(parents=True, exist_ok=True)
        return _flock(self.folder / "outbox.lock", timeout_s=30.0)

    def record(self, run_id: str) -> None:
        """Append ``run_id`` to the pending runs (one short write under the short lock)."""
        with self._short_lock():
            fd = os.open(self.pending_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{run_id}\n".encode())
            finally:
                os.close(fd)

    def _lines(self, path: Path) -> list[str]:
        try:
            return path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def delivered(self) -> set[str]:
        """Run ids in the ledger (published, or found missing from the instance)."""
        return {line.split("\t", 1)[0] for line in self._lines(self.ledger_path) if line}

    def pending(self) -> list[str]:
        """Runs recorded and not yet delivered, in the order they were recorded, once each."""
        done = self.delivered()
        seen: set[str] = set()
        ids = []
        for run_id in self._lines(self.pending_path):
            if run_id and run_id not in done and run_id not in seen:
                seen.add(run_id)
                ids.append(run_id)
        return ids

    def target_path(self, target: str) -> Path:
        """The ledger of one target (e.g. ``openlineage``) for runs not yet fully published."""
        return self.folder / f"{PUBLISHED}.{target}"

    def delivered_to(self, target: str) -> set[str]:
        """Run ids one target already took (a failure of another keeps them pending)."""
        return {line.split("\t", 1)[0] for line in self._lines(self.target_path(target)) if line}

    def mark_target(self, run_ids: Iterable[str], target: str) -> None:
        """Record that ``target`` took these runs, so a retry does not send them to it again."""
        stamp = _now()
        with self._short_lock(), self.target_path(target).open("a") as ledger:
            ledger.write("".join(f"{run_id}\t{stamp}\n" for run_id in run_ids))

    def backlog(self, targets: Iterable[str]) -> list[str]:
        """Runs published before one of ``targets`` was configured, which it never took.

        In the ledger as published (not missing), oldest first: a target configured later
        receives every run recorded before it.
        """
        published: dict[str, None] = {}
        missing = set()
        for line in self._lines(self.ledger_path):
            run_id, *rest = line.split("\t")
            if rest[-1:] == [MISSING]:
                missing.add(run_id)
            elif run_id:
                published[run_id] = None
        taken = [self.delivered_to(t) for t in targets]
        return [r for r in published if r not in missing and any(r not in t for t in taken)]

    def to_send(self, targets: Iterable[str]) -> list[str]:
        """What a publish to ``targets`` sends, oldest first, once each.

        The backlog of a newly configured target, then the pending runs.
        """
        return list(dict.fromkeys([*self.backlog(tuple(targets)), *self.pending()]))

    def mark(self, run_ids: Iterable[str], outcome: str = PUBLISHED) -> None:
        """Add runs to the ledger, then drop every delivered run from ``pending``."""
        stamp = _now()
        lines = "".join(f"{run_id}\t{stamp}\t{outcome}\n" for run_id in run_ids)
        with self._short_lock():
            with self.ledger_path.open("a") as ledger:
                ledger.write(lines)
            done = self.delivered()
            lines = self._lines(self.pending_path)
            keep = [r for r in dict.fromkeys(lines) if r and r not in done]
            temp = self.pending_path.with_suffix(".tmp")
            temp.write_text("".join(f"{r}\n" for r in keep))
            temp.replace(self.pending_path)

    @contextmanager
    def publishing(self, timeout_s: float) -> Iterator[None]:
        """Be the one publisher of this outbox, waiting up to ``timeout_s`` seconds.

        Raises:
            PublishBusyError: another publish held the lock for the whole wait.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        with _flock(self.folder / "publish.lock", timeout_s=max(timeout_s, 0.0)):
            yield

    def write_last(self, result: dict[str, Any]) -> None:
        """Keep the last publish's result for `onering catalog status`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.last_path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps({"at": _now(), **result}, indent=2, default=str) + "\n")
        temp.replace(self.last_path)

    def last(self) -> dict[str, Any] | None:
        """The last publish's result, or ``None`` before the first one."""
        try:
            return json.loads(self.last_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None


def outbox_for(state_dir: Path) -> Outbox:
    """The outbox of a state folder: ``<state>/catalog``."""
    return Outbox(state_dir / CATALOG_DIR)
