"""Send a run's OpenLineage events to an HTTP endpoint, OpenMetadata, or a file.

Configuration, read from the environment when a run is emitted (never at import):

- ``ONERING_OPENLINEAGE_URL``: an OpenLineage HTTP endpoint's base URL (Marquez:
  ``http://marquez:5000``), with ``ONERING_OPENLINEAGE_ENDPOINT`` (default
  ``api/v1/lineage``) and an optional bearer token ``ONERING_OPENLINEAGE_API_KEY``.
- ``ONERING_OPENLINEAGE_TARGET=openmetadata``: OpenMetadata's OpenLineage endpoint
  (``POST {api}/v1/openlineage/lineage``, one RunEvent per request, bearer JWT). The base
  URL is the API URL (``http://openmetadata:8585/api``): ``ONERING_OPENLINEAGE_URL``, else
  ``ONERING_OPENMETADATA_URL``; the token is ``ONERING_OPENMETADATA_JWT`` (a bot with
  EditLineage). OpenMetadata keeps COMPLETE events with inputs and outputs by default (an
  edge per input x output, with column lineage and the SQL); set its namespace mapping as
  ``openlineage_datasets`` says.
- ``ONERING_OPENLINEAGE_FILE``: a file that gets one JSON event per line (appended).
- ``ONERING_OPENLINEAGE_TIMEOUT`` (seconds per request, default 10),
  ``ONERING_OPENLINEAGE_RETRIES`` (default 3, with backoff), ``ONERING_OPENLINEAGE_NAMESPACE``
  (the job namespace, default ``onering``).

HTTP and file can be set together; every event goes to each. Tokens are never logged, and
errors name the endpoint without credentials.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from openlineage.client import OpenLineageClient
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport
from openlineage.client.transport.http import TokenProvider as NoToken
from openlineage.client.transport.transport import Transport

from onering_assets.lineage.openlineage_events import JOB_NAMESPACE, run_events

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "api/v1/lineage"
OPENMETADATA_ENDPOINT = "v1/openlineage/lineage"
RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
# The client must not add anything from this machine: no env-var or git facets.
CLIENT_CONFIG: dict[str, Any] = {
    "facets": {"environment_variables": [], "source_code_location": {"disabled": True}}
}


class OpenLineageError(RuntimeError):
    """Events could not be delivered (or the configuration is wrong).

    Attributes:
        target: ``http``, ``file`` or ``config``.
        retryable: True when sending again later may succeed (unreachable, timeout, 408,
            429, 5xx, a file error); False for a bad configuration or a 4xx answer.
        emitted: events delivered before the error.
    """

    def __init__(self, message: str, *, target: str, retryable: bool, emitted: int = 0):
        super().__init__(message)
        self.target, self.retryable, self.emitted = target, retryable, emitted


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _http_settings(env: Mapping[str, str]) -> tuple[str, str, str | None, str] | None:
    """``(url, endpoint, token, token variable)`` of the HTTP target, or ``None``."""
    target = env.get("ONERING_OPENLINEAGE_TARGET", "openlineage").strip().lower()
    if target == "openmetadata":
        url = env.get("ONERING_OPENLINEAGE_URL") or env.get("ONERING_OPENMETADATA_URL")
        if not url:
            return None
        endpoint = env.get("ONERING_OPENLINEAGE_ENDPOINT") or OPENMETADATA_ENDPOINT
        return url, endpoint, env.get("ONERING_OPENMETADATA_JWT"), "ONERING_OPENMETADATA_JWT"
    if target != "openlineage":
        raise OpenLineageError(
            f"ONERING_OPENLINEAGE_TARGET={target!r}: use 'openlineage' or 'openmetadata'.",
            target="config",
            retryable=False,
        )
    url = env.get("ONERING_OPENLINEAGE_URL")
    if not url:
        return None
    endpoint = env.get("ONERING_OPENLINEAGE_ENDPOINT") or DEFAULT_ENDPOINT
    return url, endpoint, env.get("ONERING_OPENLINEAGE_API_KEY"), "ONERING_OPENLINEAGE_API_KEY"


def configured(env: Mapping[str, str] | None = None) -> bool:
    """True when an HTTP endpoint, OpenMetadata or a file is configured."""
    env = _env(env)
    try:
        http = _http_settings(env)
    except OpenLineageError:
        return True  # configured, wrongly: emit_run says how
    return http is not None or bool(env.get("ONERING_OPENLINEAGE_FILE"))


def shown(url: str) -> str:
    """A URL without user and password, for messages."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{parts.hostname or ''}{port}"))


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name) or default)
    except ValueError:
        raise OpenLineageError(
            f"{name}={env[name]!r} is not a number.", target="config", retryable=False
        ) from None


def _transports(env: Mapping[str, str]) -> list[tuple[str, str, Transport]]:
    """``(kind, where, transport)`` for each configured target."""
    transports: list[tuple[str, str, Transport]] = []
    http = _http_settings(env)
    if http is not None:
        url, endpoint, token, variable = http
        if env.get("ONERING_OPENLINEAGE_TARGET", "").lower() == "openmetadata" and not token:
            raise OpenLineageError(
                f"OpenMetadata's OpenLineage endpoint needs a JWT: set {variable}.",
                target="config",
                retryable=False,
            )
        retries = int(_number(env, "ONERING_OPENLINEAGE_RETRIES", 3))
        config = HttpConfig(
            url=url.rstrip("/") + "/",  # urljoin keeps a base path only with a trailing /
            endpoint=endpoint.lstrip("/"),
            timeout=_number(env, "ONERING_OPENLINEAGE_TIMEOUT", 10),
            auth=ApiKeyTokenProvider({"api_key": token}) if token else NoToken({}),
            retry={
                "total": retries,
                "connect": retries,
                "read": retries,
                "backoff_factor": 0.5,
                "status_forcelist": list(RETRYABLE_STATUS),
                "allowed_methods": ["POST"],
            },
        )
        where = f"{shown(config.url)}{config.endpoint}"
        try:
            transports.append(("http", where, HttpTransport(config)))
        except ValueError:
            raise OpenLineageError(
                f"ONERING_OPENLINEAGE_URL {shown(url)!r} is not an http(s) URL.",
                target="config",
                retryable=False,
            ) from None
    path = env.get("ONERING_OPENLINEAGE_FILE")
    if path:
        transports.append(
            ("file", path, FileTransport(FileConfig(log_file_path=path, append=True)))
        )
    return transports


def _failure(kind: str, where: str, error: Exception, emitted: int) -> OpenLineageError:
    """One clear error from what the transport raised (no token can be in it)."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        status = error.response.status_code
        hint = " (check the token)" if status in (401, 403) else ""
        return OpenLineageError(
            f"OpenLineage endpoint {where} answered HTTP {status}{hint}.",
            target=kind,
            retryable=status in RETRYABLE_STATUS,
            emitted=emitted,
        )
    if isinstance(error, requests.exceptions.RetryError):
        return OpenLineageError(
            f"OpenLineage endpoint {where} kept answering an error status after its retries.",
            target=kind,
            retryable=True,
            emitted=emitted,
        )
    if isinstance(error, requests.RequestException):
        reason = type(error).__name__
        return OpenLineageError(
            f"OpenLineage endpoint {where} unreachable ({reason}); events are kept for a retry.",
            target=kind,
            retryable=True,
            emitted=emitted,
        )
    return OpenLineageError(
        f"Could not write OpenLineage events to {where}: {error}",
        target=kind,
        retryable=True,
        emitted=emitted,
    )


def emit_run(
    document: Mapping[str, Any], run_record: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> int:
    """Send one run's OpenLineage events to every configured target.

    Args:
        document: the lineage document (``build_document``).
        run_record: one of ``document["runs"]``.
        env: the configuration (default ``os.environ``).

    Returns:
        The number of events, each delivered to every target (0 when nothing is configured).

    Raises:
        OpenLineageError: a target failed or the configuration is wrong; ``retryable`` says
            whether a later attempt may succeed. Targets are tried in turn (HTTP, then file).
    """
    env = _env(env)
    transports = _transports(env)
    if not transports:
        return 0
    namespace = env.get("ONERING_OPENLINEAGE_NAMESPACE") or JOB_NAMESPACE
    events = run_events(document, run_record, namespace=namespace)
    for kind, where, transport in transports:
        client = OpenLineageClient(transport=transport, config=CLIENT_CONFIG)
        if client.transport is not transport:  # OPENLINEAGE_DISABLED=true wins
            log.info("OpenLineage: disabled by OPENLINEAGE_DISABLED; nothing sent")
            return 0
        sent = 0
        try:
            for event in events:
                client.emit(event)
                sent += 1
        except (requests.RequestException, RuntimeError, OSError) as error:
            raise _failure(kind, where, error, sent) from None
        finally:
            client.close()
        log.info("OpenLineage: %d events of run %s sent to %s", sent, run_record["run_id"], where)
    return len(events)
