"""dagster-airbyte's client, with every failure as one line naming its cause.

``AirbyteClient`` logs each failed request at error level, retries it, and ends with "Max
retries exceeded" whatever the cause. Here a 401/403 names the credential variables at once, a
4xx carries Airbyte's own ``detail``, and only an unreachable instance or a 5xx is retried:
briefly for most requests, with backoff over ``POLL_RETRY_WINDOW_S`` for a poll of a running
job (so a brief outage does not fail, and cancel, a sync that is fine).
Importing dagster-airbyte takes about a second, so only a step imports this module.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster import BetaWarning
from dagster_airbyte.resources import AirbyteClient

from onering_assets.settings import AIRBYTE_CLIENT_ID, AIRBYTE_CLIENT_SECRET, AIRBYTE_URL

POLL_RETRY_WINDOW_S = 30.0
POLL_BACKOFF_MAX_S = 8.0


class AirbyteInstanceError(Exception):
    """A running Airbyte refused or failed a step; the message is one line.

    ``retryable``: the instance was unreachable or answered 5xx (it may recover).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {}
    text = ""
    if isinstance(body, dict):
        text = str(body.get("detail") or body.get("message") or body.get("title") or "")
    return " ".join((text or response.text or response.reason or "").split())[:500]


class OneRingAirbyteClient(AirbyteClient):
    """``AirbyteClient`` whose requests fail in one line (see the module)."""

    # How long a poll of a running job keeps retrying an unreachable instance or a 5xx,
    # backing off from ``request_retry_delay`` to ``POLL_BACKOFF_MAX_S`` between tries.
    poll_retry_window_s: float = POLL_RETRY_WINDOW_S

    def _single_request(
        self,
        method: str,
        url: str,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        include_additional_request_headers: bool = True,
    ) -> Mapping[str, Any]:
        return self._request(method, url, data, params, include_additional_request_headers)

    def _request(
        self,
        method: str,
        url: str,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        include_additional_request_headers: bool = True,
        window_s: float | None = None,
    ) -> Mapping[str, Any]:
        """One request; an unreachable instance or a 5xx is retried.

        ``window_s`` None: ``request_max_retries`` more tries, ``request_retry_delay`` apart;
        else tries backing off (doubling, at most ``POLL_BACKOFF_MAX_S``) for that long.
        """
        where = self.instance
        path = urlsplit(url).path
        started = time.monotonic()
        delay = self.request_retry_delay
        if window_s is not None:
            delay = min(delay, POLL_BACKOFF_MAX_S)
        answered, cause, tries = "", "", 0
        while True:
            tries += 1
            try:
                session = self._get_session(include_additional_request_headers)
                response = session.request(
                    method, url, json=data, params=params, timeout=self.request_timeout
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                answered, cause = "", type(err).__name__
            else:
                if response.status_code < 500:
                    return self._answer(method, path, response)
                answered, cause = f"{response.status_code} on {method} {path}", _detail(response)
            if self._spent(tries, time.monotonic() - started + delay, window_s):
                break
            time.sleep(delay)
            if window_s is not None:
                delay = min(delay * 2, POLL_BACKOFF_MAX_S)
        spent = f"{tries} tries over {time.monotonic() - started:.0f} s"
        if answered:
            raise AirbyteInstanceError(
                f"Airbyte at {where} answered {answered} ({spent}): {cause or 'no detail'}",
                retryable=True,
            )
        raise AirbyteInstanceError(
            f"Airbyte at {where} is unreachable ({cause}, {spent}): check {AIRBYTE_URL} and "
            "that the instance runs (`abctl local status`).",
            retryable=True,
        )

    def _spent(self, tries: int, elapsed_s: float, window_s: float | None) -> bool:
        """Whether to stop retrying: the retries, or the window (if given), used up."""
        return tries > self.request_max_retries if window_s is None else elapsed_s > window_s

    def _answer(self, method: str, path: str, response: requests.Response) -> Mapping[str, Any]:
        """A response below 500: its JSON, or the refusal in one line."""
        if response.status_code in (401, 403):
            raise AirbyteInstanceError(
                f"Airbyte at {self.instance} refused the credentials ({response.status_code} on "
                f"{method} {path}): set {AIRBYTE_CLIENT_ID} and {AIRBYTE_CLIENT_SECRET} to "
                "an application of the instance (`abctl local credentials` prints them)."
            )
        if not response.ok:
            raise AirbyteInstanceError(
                f"Airbyte at {self.instance} refused {method} {path} ({response.status_code}): "
                f"{_detail(response)}"
            )
        return response.json() if response.content else {}

    def get_job_details(self, job_id: int) -> Mapping[str, Any]:
        """A poll of a running job: a brief outage or 5xx is retried over a longer window."""
        url = f"{self.rest_api_base_url}/jobs/{job_id}"
        return self._request("GET", url, window_s=self.poll_retry_window_s)

    @property
    def instance(self) -> str:
        parts = urlsplit(self.rest_api_base_url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"

    def get(self, path: str) -> Mapping[str, Any]:
        return self._single_request("GET", f"{self.rest_api_base_url}{path}")

    def post(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return self._single_request("POST", f"{self.rest_api_base_url}{path}", data=body)

    def patch(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return self._single_request("PATCH", f"{self.rest_api_base_url}{path}", data=body)

    def listed(self, path: str, **params: str) -> list[Mapping[str, Any]]:
        """Every item of a paginated list of the public API."""
        return list(self._paginated_request("GET", f"{self.rest_api_base_url}{path}", params))

    def job_info(self, job_id: int) -> Mapping[str, Any]:
        """The job with its attempts' stream stats and failures (Configuration API)."""
        url = f"{self.configuration_api_base_url}/jobs/get"
        return self._single_request("POST", url, data={"id": job_id})


def client_for(
    url: str,
    *,
    workspace_id: str,
    client_id: str,
    client_secret: str,
    poll_interval_s: float,
    poll_timeout_s: float,
) -> OneRingAirbyteClient:
    """A client of the instance at ``url`` (its public API and Configuration API)."""
    with warnings.catch_warnings():  # the client is beta: pinned with dagster, tested here
        warnings.simplefilter("ignore", BetaWarning)
        return OneRingAirbyteClient(
            rest_api_base_url=f"{url}/api/public/v1",
            configuration_api_base_url=f"{url}/api/v1",
            workspace_id=workspace_id or "-",
            # dagster-airbyte authenticates only when both are given; one alone gets a 401.
            client_id=client_id if client_id or client_secret else None,
            client_secret=client_secret if client_id or client_secret else None,
            request_max_retries=2,
            request_retry_delay=0.5,
            request_timeout=30,
            poll_interval=poll_interval_s,
            poll_timeout=poll_timeout_s,
            # a sync left running (a killed step) is polled to its end, not refused
            poll_previous_running_sync=True,
            poll_retry_window_s=POLL_RETRY_WINDOW_S,
        )
