"""The HTTP side: OpenMetadata's own client, bounded retries, and a recorded empty server.

Every request goes through ``openmetadata-ingestion``'s ``OpenMetadata`` client (its JWT
auth provider and REST layer). Two things are OneRing's own:

- retries: the client's (30 s waits, 429 remembered as a "limit" for 60 s, urllib3 retrying
  reads underneath) are turned off, and each call is retried here a bounded number of times
  with exponential backoff on timeouts, connection errors, 408, 429 and 5xx;
- the dry run: the same client, with a transport adapter that answers as an empty server
  (404 to every read, the body back with an id to every write) and records each request.

The token is never logged: ``scrub`` removes it from any text that leaves this module.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

log = logging.getLogger("onering_catalog")
T = TypeVar("T")

DRY_RUN_URL = "http://openmetadata.invalid/api"
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class CatalogError(Exception):
    """A publish step failed; ``retryable`` says whether the next publish may succeed."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class TokenRejectedError(CatalogError):
    """The server answered 401/403: the JWT is missing, expired or lacks the rights."""


class ConflictError(CatalogError):
    """The server answered 409 (the resource exists, or changed under the request)."""


@dataclass
class Counters:
    """What was sent: every HTTP request, and the writes among them."""

    requests: int = 0
    writes: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, method: str, path: str, body: Any, record: bool) -> None:
        """Count one request (and keep it, for a dry run)."""
        with self.lock:
            self.requests += 1
            self.writes += method != "GET"
            if record:
                self.log.append({"method": method, "path": path, "body": body})


def _path_of(url: str, base_path: str) -> str:
    parts = urlsplit(url)
    path = parts.path.removeprefix(base_path)
    return path + (f"?{parts.query}" if parts.query else "")


def _body_of(request: requests.PreparedRequest) -> Any:
    raw = request.body
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return json.loads(text)
    except ValueError:
        return text


class CountingAdapter(HTTPAdapter):
    """The real transport (no urllib3 retries), counting requests."""

    def __init__(self, counters: Counters, base_path: str, pool: int) -> None:
        super().__init__(pool_connections=2, pool_maxsize=pool, max_retries=0)
        self.counters, self.base_path = counters, base_path

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        """Count, then send."""
        path = _path_of(request.url or "", self.base_path)
        self.counters.count(request.method or "GET", path, None, record=False)
        return super().send(request, *args, **kwargs)


class EmptyServerAdapter(BaseAdapter):
    """An OpenMetadata server with nothing in it, recording what a publish would send.

    Reads answer 404; writes answer their body with an ``id`` derived from the path and the
    body's name (stable across dry runs); deletes answer ``{}``.
    """

    def __init__(self, counters: Counters, base_path: str) -> None:
        super().__init__()
        self.counters, self.base_path = counters, base_path

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        """Record the request and answer it as an empty server would."""
        method = request.method or "GET"
        path = _path_of(request.url or "", self.base_path)
        body = _body_of(request)
        self.counters.count(method, path, body, record=True)
        response = requests.Response()
        response.request, response.url = request, request.url or ""
        response.headers["Content-Type"] = "application/json"
        if method == "GET":
            response.status_code = 404
            answer: Any = {"code": 404, "message": f"{path} not found (dry run: empty server)"}
        elif isinstance(body, dict):
            response.status_code = 201 if method in ("PUT", "POST") else 200
            name = str(body.get("name") or body.get("fullyQualifiedName") or "")
            answer = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{path}#{name}")), **body}
        else:
            response.status_code, answer = 200, {}
        response._content = json.dumps(answer).encode()
        return response

    def close(self) -> None:
        """Nothing to release."""


def _status_of(exc: Exception) -> int | None:
    """The HTTP status of an exception the OpenMetadata client raised, if any."""
    from metadata.ingestion.ometa.client import APIError

    if isinstance(exc, _LineageError):
        return exc.status
    if isinstance(exc, APIError):
        return exc.status_code or (exc.code if isinstance(exc.code, int) else None)
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class Api:
    """OpenMetadata's client with OneRing's retries, error classes, counters and dry run.

    Args:
        url: the API root (``http://host:8585/api``), or ``None`` for a dry run.
        token: the JWT (never logged; ``None`` for a dry run).
        timeout: seconds per request.
        retries: extra attempts after a retryable failure.
        backoff: the first wait in seconds; each next wait doubles (capped at 8 s).
        workers: the connection pool size (the thread pool of parallel reads).
    """

    def __init__(
        self,
        url: str | None,
        token: str | None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        workers: int = 8,
    ) -> None:
        from metadata.generated.schema.entity.services.connections.metadata.openMetadataConnection import (  # noqa: E501
            AuthProvider,
            OpenMetadataConnection,
        )
        from metadata.generated.schema.security.client.openMetadataJWTClientConfig import (
            OpenMetadataJWTClientConfig,
        )
        from metadata.ingestion.ometa.ometa_api import OpenMetadata

        self.dry_run = url is None
        self.token = token or ""
        self.retries, self.backoff = max(0, retries), max(0.0, backoff)
        self.counters = Counters()
        host = (url or DRY_RUN_URL).rstrip("/")
        # A dry run sends nothing, but the client's auth provider still wants some token.
        jwt = "dry-run" if self.dry_run else self.token
        connection = OpenMetadataConnection(
            hostPort=host,
            enableVersionValidation=False,
            authProvider=AuthProvider.openmetadata,
            securityConfig=OpenMetadataJWTClientConfig.model_validate({"jwtToken": jwt}),
        )
        # The client's own retry layers would multiply and hide attempts: one attempt each here.
        self.metadata = OpenMetadata(
            connection,
            additional_client_config_arguments={"retry": 0, "retry_codes": [], "limit_codes": []},
        )
        rest = self.metadata.client
        # ClientConfig takes whole seconds only; the REST client reads this per request.
        cast(Any, rest)._timeout = timeout
        base_path = urlsplit(host).path
        adapter: BaseAdapter = (
            EmptyServerAdapter(self.counters, base_path)
            if self.dry_run
            else CountingAdapter(self.counters, base_path, pool=max(workers, 1) + 2)
        )
        session = rest._session
        session.mount("http://", adapter)
        session.mount("https://", adapter)

    def scrub(self, text: str) -> str:
        """``text`` without the token (defence in depth: no message should hold it)."""
        return text.replace(self.token, "***") if self.token else text

    def _attempts(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call``, retrying retryable failures with exponential backoff."""
        from metadata.ingestion.ometa.client import APIError, RestTransportError

        attempt = 0
        while True:
            try:
                return call()
            except (
                APIError,
                requests.HTTPError,
                RestTransportError,
                requests.RequestException,
            ) as exc:
                status = _status_of(exc)
                error = self._classify(what, status, exc)
            if not error.retryable or attempt >= self.retries:
                raise error
            wait = min(self.backoff * 2**attempt, 8.0)
            log.warning("%s; retry %d of %d in %.1f s", error, attempt + 1, self.retries, wait)
            time.sleep(wait)
            attempt += 1

    def _classify(self, what: str, status: int | None, exc: Exception) -> CatalogError:
        detail = self.scrub(str(exc))[:300]
        if status in (401, 403):
            return TokenRejectedError(
                f"{what}: token rejected by OpenMetadata (HTTP {status}); set a valid bot JWT "
                "in ONERING_OPENMETADATA_JWT",
                retryable=False,
                status=status,
            )
        if status == 409:
            return ConflictError(
                f"{what}: conflict (HTTP 409): {detail}", retryable=False, status=409
            )
        if status is None:
            return CatalogError(
                f"{what}: OpenMetadata unreachable or timed out: {detail}", retryable=True
            )
        return CatalogError(
            f"{what}: HTTP {status}: {detail}", retryable=status in RETRYABLE_STATUS, status=status
        )

    def get(self, path: str) -> dict[str, Any] | None:
        """GET ``path`` (under ``/v1``); ``None`` when the server answers 404."""
        from metadata.ingestion.ometa.client import APIError

        def call() -> dict[str, Any] | None:
            try:
                answer = self.metadata.client.get(path)
            except APIError as exc:
                if _status_of(exc) == 404:
                    return None
                raise
            return answer if isinstance(answer, dict) else None

        return self._attempts(f"GET {path}", call) or None

    def write(
        self, method: str, path: str, body: Any = None, *, exists_ok: bool = False
    ) -> dict[str, Any]:
        """Send a write (``PUT``/``POST``/``PATCH``/``DELETE``); the answer's JSON or ``{}``.

        A 409 (another writer created or changed the entity between our read and write) is
        retried once: a create-or-update PUT then updates what the other writer made. With
        ``exists_ok`` (a time-series POST that is already there), a 409 answers
        ``{"conflict": True}`` instead.
        """
        data = _serialize(body)
        rest = self.metadata.client
        calls: dict[str, Callable[[], Any]] = {
            "PUT": lambda: rest.put(path, data=data),
            "POST": lambda: rest.post(path, data=data),
            "PATCH": lambda: rest.patch(path, data=data),
            "DELETE": lambda: rest.delete(path),
        }
        try:
            answer = self._attempts(f"{method} {path}", calls[method])
        except ConflictError:
            if exists_ok:
                return {"conflict": True}
            log.warning("%s %s: 409 conflict, sending it once more", method, path)
            answer = self._attempts(f"{method} {path}", calls[method])
        return answer if isinstance(answer, dict) else {}

    def add_lineage(self, request: Any, what: str) -> None:
        """``OpenMetadata.add_lineage``; its errors come back as ``{"error": ...}``: raise them."""

        def call() -> None:
            result = self.metadata.add_lineage(request, check_patch=False, return_lineage=False)
            if isinstance(result, dict) and result.get("error"):
                match = re.match(r"Error (\d+)", str(result["error"]))
                status = int(match.group(1)) if match else None
                raise _LineageError(str(result["error"]), status)

        self._attempts(f"PUT /v1/lineage {what}", call)


class _LineageError(requests.RequestException):
    """``add_lineage``'s error dict as an exception carrying its HTTP status."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def _serialize(body: Any) -> str | None:
    """JSON text of a generated model (unset and null fields left out), a list or a dict."""
    if body is None:
        return None
    if hasattr(body, "model_dump_json"):
        return body.model_dump_json(exclude_none=True, by_alias=True)
    if isinstance(body, list):
        items = [json.loads(_serialize(item) or "null") for item in body]
        return json.dumps(items)
    return json.dumps(body)
