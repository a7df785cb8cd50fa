"""Reading a Dagster run back from the instance's event log: per-step wall times, where the
time outside steps goes, and how long the writes to the event log storage took."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Per-step wall time (STEP_START to STEP_SUCCESS/FAILURE), keyed ``layer/table``."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[entry.step_key] = entry.timestamp
    return {k.replace("__", "/", 1): ends[k] - starts[k] for k in starts if k in ends}


def run_phases(
    instance: dg.DagsterInstance, run_id: str, called: float, returned: float
) -> dict[str, Any]:
    """Where the time outside steps goes, and how many events the run wrote to the log.

    ``called``/``returned`` are ``time.time()`` around ``runner.execute``.
    """
    logs = instance.all_logs(run_id)
    kinds = [e.dagster_event.event_type_value for e in logs if e.dagster_event]
    stamps: dict[str, float | None] = {"start": None, "first_step": None, "last_step": None}
    for entry, kind in zip((e for e in logs if e.dagster_event), kinds, strict=True):
        if kind in ("PIPELINE_START", "RUN_START") and stamps["start"] is None:
            stamps["start"] = entry.timestamp
        elif kind == "STEP_START" and stamps["first_step"] is None:
            stamps["first_step"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            stamps["last_step"] = entry.timestamp
    start = stamps["start"] or called
    return {
        "before_run_start_s": start - called,
        "run_start_to_first_step_s": (stamps["first_step"] or start) - start,
        "after_last_step_s": returned - (stamps["last_step"] or returned),
        "events": len(logs),
        "events_by_type": dict(Counter(kinds).most_common()),
    }


class EventStoreTimer:
    """Times every write to the instance's event log storage (wraps its store methods).

    A batch stores its events through ``store_event``: only the outermost call is counted.
    """

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.calls: list[tuple[float, float]] = []  # (wall-clock start, seconds)
        self._inside = threading.local()
        storage = instance.event_log_storage
        for name in ("store_event", "store_event_batch"):
            setattr(storage, name, self._timed(getattr(storage, name)))

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._inside, "active", False):
                return method(*args, **kwargs)
            began, started = time.time(), time.perf_counter()
            self._inside.active = True
            try:
                return method(*args, **kwargs)
            finally:
                self._inside.active = False
                self.calls.append((began, time.perf_counter() - started))

        return timed

    def take(self) -> list[tuple[float, float]]:
        calls, self.calls = self.calls, []
        return calls


def event_store_seconds(
    calls: list[tuple[float, float]], instance: dg.DagsterInstance, run_id: str
) -> dict[str, Any]:
    """Event-log write time of a run: before its first step, and inside each step."""
    windows: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event and entry.step_key and event.event_type_value == "STEP_START":
            windows[entry.step_key] = (entry.timestamp, entry.timestamp)
        elif (
            event and entry.step_key and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE")
        ):
            windows[entry.step_key] = (windows[entry.step_key][0], entry.timestamp)
    first = min((w[0] for w in windows.values()), default=float("inf"))
    per_step = {
        key.replace("__", "/", 1): sum(d for t, d in calls if start <= t <= end)
        for key, (start, end) in windows.items()
    }
    return {
        "total_s": sum(d for _, d in calls),
        "before_first_step_s": sum(d for t, d in calls if t < first),
        "in_steps_s": sum(per_step.values()),
        "per_step_s": per_step,
        "writes": len(calls),
    }
