"""dagster-airbyte's client, with every failure as one line naming its cause.

``AirbyteClient`` logs each failed request at error level, retries it, and ends with "Max
retries exceeded" whatever the cause. Here a 401/403 names the credential variables at once, a
4xx carries Airbyte's own ``detail``, and only an unreachable instance or a 5xx is retried.
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


class AirbyteInstanceError(Exception):
    """A running Airbyte refused or failed a step; the message is one line."""


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

    def _single_request(
        self,
        method: str,
        url: str,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        include_additional_request_headers: bool = True,
    ) -> Mapping[str, Any]:
        where = self.instance
        path = urlsplit(url).path
        cause = ""
        for attempt in range(self.request_max_retries + 1):
            if attempt:
                time.sleep(self.request_retry_delay)
            try:
                session = self._get_session(include_additional_request_headers)
                response = session.request(
                    method, url, json=data, params=params, timeout=self.request_timeout
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                cause = type(err).__name__
                continue
            if response.status_code >= 500:
                cause = f"{response.status_code} on {method} {path}: {_detail(response)}"
                continue
            if response.status_code in (401, 403):
                raise AirbyteInstanceError(
                    f"Airbyte at {where} refused the credentials ({response.status_code} on "
                    f"{method} {path}): set {AIRBYTE_CLIENT_ID} and {AIRBYTE_CLIENT_SECRET} to "
                    "an application of the instance (`abctl local credentials` prints them)."
                )
            if not response.ok:
                raise AirbyteInstanceError(
                    f"Airbyte at {where} refused {method} {path} ({response.status_code}): "
                    f"{_detail(response)}"
                )
            return response.json() if response.content else {}
        raise AirbyteInstanceError(
            f"Airbyte at {where} is unreachable ({cause}, {self.request_max_retries + 1} "
            f"tries): check {AIRBYTE_URL} and that the instance runs (`abctl local status`)."
        )

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
        )
