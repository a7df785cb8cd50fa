"""The publish summary: counts, what was written, errors and warnings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Summary:
    """What one publish did; ``as_json`` is the last line the command prints.

    ``written`` lists each write that the server accepted (``"created table x.y"``);
    ``not_written`` the phases a failed publish did not finish; ``seconds`` the publish's
    own time, which includes the import of ``openmetadata-ingestion`` (about 5 s) when the
    publish writes: a publish that only reads never imports it.
    """

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    not_written: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def done(self, action: str, what: str) -> None:
        """Count one outcome: ``created``, ``updated``, ``deleted`` or ``unchanged``."""
        with self.lock:
            setattr(self, action, getattr(self, action) + 1)
            if action != "unchanged":
                self.written.append(f"{action} {what}")

    def warn(self, text: str) -> None:
        """A note that does not fail the publish (an unknown owner, a skipped check)."""
        with self.lock:
            if text not in self.warnings:
                self.warnings.append(text)

    def as_json(self, *, requests: int, writes: int, dry_run: str | None) -> dict[str, Any]:
        """The JSON summary of the shared conventions, plus warnings and the written list."""
        ok = not self.errors
        out: dict[str, Any] = {
            "ok": ok,
            "requests": requests,
            "writes": writes,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "errors": self.errors,
            "warnings": self.warnings,
            "dry_run": dry_run,
            "seconds": round(self.seconds, 3),
        }
        if not ok:
            out["written"] = self.written
            out["not_written"] = self.not_written
        return out
