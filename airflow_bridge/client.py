"""The few Airflow REST API v2 calls the CLI needs, as any other client would make them.

Used by ``onering airflow up|trigger|status`` through :mod:`airflow_bridge.local`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from airflow_bridge.errors import BridgeError

FINISHED = {"success", "failed"}
# Task states worth a line when following a run (not none/scheduled/queued).
NOTEWORTHY = {"running", "success", "failed", "upstream_failed", "skipped", "up_for_retry"}


class AirflowClient:
    """Airflow REST API v2 calls with a JWT from the auth manager."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    def login(cls, url: str, username: str, password: str) -> AirflowClient:
        body = {"username": username, "password": password}
        return cls(url, request_json("POST", f"{url}/auth/token", body)["access_token"])

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return request_json(
            "GET", f"{self.url}/api/v2{path}{'?' + query if query else ''}", None, self.headers
        )

    def dags(self) -> list[dict[str, Any]]:
        """Every DAG Airflow knows, with ``is_paused`` and ``next_dagrun_run_after``."""
        return self.get("/dags", limit=1000)["dags"]

    def unpause(self, dag_id: str) -> None:
        body = {"is_paused": False}
        request_json("PATCH", f"{self.url}/api/v2/dags/{dag_id}", body, self.headers)

    def paused(self, dag_ids: Iterable[str]) -> list[str]:
        """Those of ``dag_ids`` that are paused (their runs, even triggered ones, wait)."""
        return [d for d in dag_ids if self.get(f"/dags/{d}")["is_paused"]]

    def runs_since(self, since: datetime) -> list[dict[str, Any]]:
        """DAG runs (of any DAG) queued at or after ``since`` (aware), oldest first."""
        runs = self.get("/dags/~/dagRuns", order_by="-id", limit=100)["dag_runs"]
        return [r for r in reversed(runs) if r["queued_at"] and _when(r["queued_at"]) >= since]

    def trigger(
        self, dag_id: str, *, partition_key: str | None, conf: dict[str, Any]
    ) -> dict[str, Any]:
        """Queue a run now; a partitioned DAG run carries ``partition_key`` downstream."""
        # A run id of our own: if a retried POST finds its first attempt did commit (409),
        # the run is fetched instead of a second one being queued.
        run_id = f"manual__onering__{time.strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(3)}"
        body: dict[str, Any] = {"logical_date": None, "conf": conf, "dag_run_id": run_id}
        if partition_key:
            body["partition_key"] = partition_key
        try:
            return request_json(
                "POST", f"{self.url}/api/v2/dags/{dag_id}/dagRuns", body, self.headers
            )
        except BridgeError as err:
            if "HTTP 409" not in str(err):
                raise
            return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: t["state"] for t in tis}

    def failures(self, dag_id: str, run_id: str) -> dict[str, list[str]]:
        """Per failed task of a run: why, from its last try's log (:func:`error_lines`)."""
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        found: dict[str, list[str]] = {}
        for ti in tis:
            if ti["state"] != "failed":
                continue
            path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs"
            try:
                log = self.get(f"{path}/{ti['try_number']}", full_content="true")
            except BridgeError as err:  # the reason stays unknown, the failure does not
                found[ti["task_id"]] = [f"(its log could not be read: {err})"]
                continue
            found[ti["task_id"]] = error_lines(log.get("content") or [])
        return found

    def follow(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout_s: float,
        say: Callable[[str], None],
        poll_s: float = 2,
    ) -> dict[str, Any]:
        """Wait for a run to finish, saying each task state change; the final run."""
        seen: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            for task, state in sorted(self.task_states(dag_id, run_id).items()):
                if state in NOTEWORTHY and seen.get(task) != state:
                    say(f"  {dag_id}.{task}: {state}")
                    seen[task] = state
            if run["state"] in FINISHED:
                run["tasks"] = seen
                return run
            if time.monotonic() > deadline:
                raise BridgeError(
                    f"{dag_id} run {run_id} still {run['state']} after {timeout_s:g} s."
                )
            time.sleep(poll_s)

    def wait_for_keyed_run(
        self, dag_id: str, partition_key: str, *, after: str, timeout_s: float, poll_s: float = 2
    ) -> dict[str, Any]:
        """The run of ``dag_id`` for ``partition_key`` queued at or after ``after``.

        ``after`` is an ISO time; an asset-triggered run appears a little after its trigger.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.get(f"/dags/{dag_id}/dagRuns", order_by="-id", limit=20)["dag_runs"]
            for run in runs:
                if run["partition_key"] == partition_key and run["queued_at"] >= after:
                    return run
            time.sleep(poll_s)
        raise BridgeError(
            f"{dag_id} was not triggered for partition {partition_key} in {timeout_s:g} s."
        )


def error_lines(content: list[Any], most: int = 20) -> list[str]:
    """Why a task failed, from its log (Airflow 3: structured events; plain lines otherwise).

    The exception the task failed with (the last one logged), every line of its message
    (the operator's summary of the Dagster run: each failed step and why); without one, the
    last error lines.
    """
    errors: list[str] = []
    reason: list[str] = []
    for entry in content:
        if not isinstance(entry, dict):
            if "ERROR" in str(entry):
                errors.append(str(entry).strip())
            continue
        details = [d for d in entry.get("error_detail") or [] if isinstance(d, dict)]
        if details and details[0].get("exc_type"):
            lines = str(details[0].get("exc_value", "")).strip().splitlines() or [""]
            reason = [f"{details[0]['exc_type']}: {lines[0]}", *lines[1:]]  # the last one wins
            continue
        if str(entry.get("level", "")).lower() in {"error", "critical"}:
            errors.append(str(entry.get("event", "")).strip())
    if reason:
        return [line[:500] for line in reason[:most]]
    return [line[:500] for line in errors if line][-4:]


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


# Airflow on SQLite answers HTTP 500 "Database error" while another component holds the
# database lock (seen under load on 2 cores); the request is safe to repeat.
_BUSY_RETRIES = 5


def request_json(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Any:
    for attempt in range(_BUSY_RETRIES - 1):
        try:
            return _request_once(method, url, body, headers)
        except BridgeError as err:
            if not ("HTTP 500" in str(err) and "Database error" in str(err)):
                raise
            time.sleep(1.0 + attempt)
    return _request_once(method, url, body, headers)


def _request_once(
    method: str, url: str, body: dict[str, Any] | None, headers: dict[str, str] | None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("detail", detail)
        raise BridgeError(f"Airflow API {method} {url}: HTTP {err.code}: {detail}") from err
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        raise BridgeError(f"Airflow API at {url} is not reachable ({err}).") from err
