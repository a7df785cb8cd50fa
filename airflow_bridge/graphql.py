"""The ``dagster_graphql`` mode: launch on a running Dagster webserver, poll, terminate.

Uses ``dagster_graphql.DagsterGraphQLClient`` (imported when a task runs, never at parse).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from airflow_bridge.errors import BridgeError
from airflow_bridge.formats import NOT_RETRYABLE

ASSET_JOB = "__ASSET_JOB"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

EVENTS_QUERY = """
query RunEvents($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { stepKey message }
        ... on ExecutionStepFailureEvent {
          error {
            message className
            cause { message className cause { message className cause { message className } } }
          }
        }
        ... on AssetCheckEvaluationEvent {
          evaluation { checkName success assetKey { path } severity }
        }
        ... on MaterializationEvent { assetKey { path } }
      }
    }
  }
}
"""


def _events(client: Any, run_id: str) -> list[dict[str, Any]]:
    events, cursor = [], None
    while True:
        data = client._execute(EVENTS_QUERY, {"runId": run_id, "cursor": cursor})["logsForRun"]
        events += data.get("events", [])
        cursor = data.get("cursor")
        if not data.get("hasMore"):
            return events


def summarize(run_id: str, status: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The same summary shape as ``onering materialize --json``."""
    checks, failures, rows, final = [], [], {}, []
    for event in events:
        kind = event["__typename"]
        if kind == "AssetCheckEvaluationEvent":
            ev = event["evaluation"]
            checks.append(
                {
                    "asset": "/".join(ev["assetKey"]["path"]),
                    "check": ev["checkName"],
                    "passed": ev["success"],
                    "description": event.get("message") or "",
                    "blocking": ev.get("severity") == "ERROR",
                }
            )
        elif kind == "ExecutionStepFailureEvent":
            error = _reason(event["error"])
            failures.append(f"{event.get('stepKey')}: {error['message'].strip()}")
            if error.get("className") in NOT_RETRYABLE:
                final.append(str(event.get("stepKey")))
        elif kind == "MaterializationEvent":
            rows.setdefault("/".join(event["assetKey"]["path"]), None)
    failed_checks = [
        f"{c['asset']}:{c['check']}" for c in checks if c["blocking"] and not c["passed"]
    ]
    return {
        "success": status == "SUCCESS",
        "status": status,
        "run_id": run_id,
        "rows": rows,
        "checks": checks,
        "failures": failures,
        # As RunSummary.to_dict: a failed blocking check, or a OneRing error a retry cannot
        # fix, is final; the rest may pass on a retry (a step that failed on its checks
        # also emitted the failed checks).
        "failed_checks": failed_checks,
        "errors": failures if not failed_checks else [],
        "retryable": status != "SUCCESS" and not failed_checks and not final,
    }


def _reason(error: dict[str, Any]) -> dict[str, Any]:
    """The error of a step's failure that says why it failed.

    Dagster wraps the asset's own error (OneRing's, which names the fix) in
    ``DagsterExecutionStepExecutionError``: the first error of the chain that is not
    Dagster's, else the top one.
    """
    chain = []
    while error:
        chain.append(error)
        error = error.get("cause") or {}
    return next((e for e in chain if not str(e.get("className")).startswith("Dagster")), chain[0])


def run_graphql(
    url: str,
    keys: Sequence[str],
    first: str | None,
    last: str | None,
    tags: dict[str, str],
    *,
    headers: dict[str, str] | None = None,
    location: str | None = None,
    poll_s: float = 1.0,
    timeout_s: float = 3600.0,
    on_launch: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Launch the assets (with their checks) as one run and wait for it to end."""
    from urllib.parse import urlparse

    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    parsed = urlparse(url)
    client = DagsterGraphQLClient(
        parsed.hostname or "127.0.0.1",
        port_number=parsed.port,
        headers=headers,
        use_https=parsed.scheme == "https",
    )
    run_tags = dict(tags)
    if first and last:
        run_tags |= {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
    try:
        run_id = client.submit_job_execution(
            ASSET_JOB,
            repository_location_name=location,
            tags=run_tags,
            asset_selection=[k.split("/") for k in keys],
        )
    except (DagsterGraphQLClientError, KeyError) as err:
        # The client raises KeyError itself for some refusals (an unknown asset key).
        raise BridgeError(
            f"Dagster at {url} refused the run of {', '.join(keys)}: {err!r}; "
            "is the manifest current (`onering airflow export`) and the code location loaded?"
        ) from err
    if on_launch:
        on_launch(run_id)
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get_run_status(run_id).value
        if status in TERMINAL:
            return summarize(run_id, status, _events(client, run_id))
        if time.monotonic() > deadline:
            client.terminate_run(run_id)
            raise BridgeError(
                f"Dagster run {run_id} did not finish in {timeout_s:g} s; terminated."
            )
        time.sleep(poll_s)


def terminate(url: str, run_id: str, headers: dict[str, str] | None = None) -> None:
    """Stop the Dagster run behind a killed Airflow task."""
    from urllib.parse import urlparse

    from dagster_graphql import DagsterGraphQLClient

    parsed = urlparse(url)
    DagsterGraphQLClient(
        parsed.hostname or "127.0.0.1",
        port_number=parsed.port,
        headers=headers,
        use_https=parsed.scheme == "https",
    ).terminate_run(run_id)
