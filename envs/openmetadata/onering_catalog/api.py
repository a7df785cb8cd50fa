"""The HTTP side: plain reads, OpenMetadata's own client for writes, bounded retries, dry run.

Reads (every GET) go through a plain ``requests`` session that sends exactly what the
``OpenMetadata`` client's REST layer (``metadata/ingestion/ometa/client.py``) sends: the URL
``{host}/v1{path}``, the headers ``Content-type: application/json`` and ``Authorization:
Bearer <jwt>`` on the session's defaults, no redirects, the same timeout. So a publish that
only reads (an unchanged re-publish) never imports ``openmetadata-ingestion``, whose client
and generated models take about 5 s to import. Writes and lineage edges go through the
``OpenMetadata`` client (its JWT auth provider and REST layer), built on the first of them.

Two more things are OneRing's own:

- retries: the client's (30 s waits, 429 remembered as a "limit" for 60 s, urllib3 retrying
  reads underneath) are turned off, and each call is retried here a bounded number of times
  with exponential backoff on timeouts, connection errors, 408, 429 and 5xx;
- the dry run: both sessions carry a transport adapter that answers as an empty server
  (404 to every read, the body back with an id to every write) and records each request.

The token is never logged: ``scrub`` removes it from any text that leaves this module.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

from onering_catalog.transport import Counters, CountingAdapter, EmptyServerAdapter

if TYPE_CHECKING:
    from metadata.ingestion.ometa.ometa_api import OpenMetadata

log = logging.getLogger("onering_catalog")
T = TypeVar("T")

DRY_RUN_URL = "http://openmetadata.invalid/api"
API_VERSION = "v1"  # the REST client's default ``api_version``
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
NOT_THE_API = (
    "OpenMetadata answered an HTML page, not its API: check that ONERING_OPENMETADATA_URL "
    "is the API root (e.g. http://host:8585/api) and that no proxy or login page is in between"
)


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


class _Failure(requests.RequestException):
    """A failed request as OneRing classifies it: its HTTP status, or an HTML page."""

    def __init__(self, message: str, status: int | None, *, html: bool = False) -> None:
        super().__init__(message)
        self.status, self.html = status, html


def _status_of(exc: Exception) -> int | None:
    """The HTTP status of a failed request (``APIError``, ``HTTPError``, ``_Failure``), if any.

    Read by attribute so that the read path needs no import of the client's ``APIError``
    (its ``status_code``, else its int ``code``).
    """
    if isinstance(exc, _Failure):
        return exc.status
    for value in (getattr(exc, "status_code", None), getattr(exc, "code", None)):
        if isinstance(value, int):
            return value
    return getattr(getattr(exc, "response", None), "status_code", None)


def _jwt_of(token: str) -> str:
    """The JWT to send: the client's auth provider reads a token that names a file from it."""
    # os.path.isfile, not Path.is_file: a JWT is longer than a file name may be, and only
    # os.path.isfile answers False to that instead of raising.
    if token and os.path.isfile(token):  # noqa: PTH113
        return Path(token).read_text(encoding="utf-8").rstrip()
    return token


def _is_html(response: requests.Response) -> bool:
    """The client's ``is_html_body``: an HTML content type, or a body that is a web page."""
    if "html" in response.headers.get("Content-Type", "").lower():
        return True
    head = response.text[:2048].lstrip()
    return head.startswith("<") and "<html" in head.lower()


def _api_error(response: requests.Response) -> dict[str, Any] | None:
    """The API's error body (``{"code": ..., "message": ...}``), as the client decodes it."""
    if "code" not in response.text:
        return None
    try:
        error = response.json()
    except ValueError:
        return None
    return error if isinstance(error, dict) and "code" in error else None


class Api:
    """OpenMetadata's API with OneRing's retries, error classes, counters and dry run.

    Args:
        url: the API root (``http://host:8585/api``), or ``None`` for a dry run.
        token: the JWT (never logged; ``None`` for a dry run).
        timeout: seconds per request.
        retries: extra attempts after a retryable failure.
        backoff: the first wait in seconds; each next wait doubles (capped at 8 s).
        workers: the connection pool size (the thread pool of parallel reads).

    Raises:
        ValueError: ``url`` is not an ``http://`` or ``https://`` URL.
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
        self.dry_run = url is None
        self.token = token or ""
        self.timeout = timeout
        self.retries, self.backoff = max(0, retries), max(0.0, backoff)
        self.counters = Counters()
        self.host = (url or DRY_RUN_URL).rstrip("/")
        if not self.host.startswith(("http://", "https://")):
            raise ValueError("ONERING_OPENMETADATA_URL must start with http:// or https://")
        # A dry run sends nothing, but the client's auth provider still wants some token.
        self._token_sent = "dry-run" if self.dry_run else self.token
        self._jwt = _jwt_of(self._token_sent)
        base_path = urlsplit(self.host).path
        self.adapter: BaseAdapter = (
            EmptyServerAdapter(self.counters, base_path)
            if self.dry_run
            else CountingAdapter(self.counters, base_path, pool=max(workers, 1) + 2)
        )
        self.session = requests.Session()
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)
        self._client: OpenMetadata[Any, Any] | None = None
        self._client_lock = threading.Lock()

    @property
    def metadata(self) -> OpenMetadata[Any, Any]:
        """``openmetadata-ingestion``'s client, imported and built on first use.

        Raises:
            CatalogError: the client cannot be set up (not retryable).
        """
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = self._build_client()
                except Exception as exc:
                    raise CatalogError(
                        f"cannot set up the OpenMetadata client: {self.scrub(str(exc))[:300]}",
                        retryable=False,
                    ) from None
            return self._client

    def _build_client(self) -> OpenMetadata[Any, Any]:
        from metadata.generated.schema.entity.services.connections.metadata.openMetadataConnection import (  # noqa: E501
            AuthProvider,
            OpenMetadataConnection,
        )
        from metadata.generated.schema.security.client.openMetadataJWTClientConfig import (
            OpenMetadataJWTClientConfig,
        )
        from metadata.ingestion.ometa.ometa_api import OpenMetadata

        connection = OpenMetadataConnection(
            hostPort=self.host,
            enableVersionValidation=False,
            authProvider=AuthProvider.openmetadata,
            securityConfig=OpenMetadataJWTClientConfig.model_validate(
                {"jwtToken": self._token_sent}
            ),
        )
        # The client's own retry layers would multiply and hide attempts: one attempt each here.
        client = OpenMetadata(
            connection,
            additional_client_config_arguments={"retry": 0, "retry_codes": [], "limit_codes": []},
        )
        rest = client.client
        # ClientConfig takes whole seconds only; the REST client reads this per request.
        cast(Any, rest)._timeout = self.timeout
        rest._session.mount("http://", self.adapter)
        rest._session.mount("https://", self.adapter)
        return client

    def scrub(self, text: str) -> str:
        """``text`` without the token (defence in depth: no message should hold it)."""
        for secret in {self.token, self._jwt} - {"", "dry-run"}:
            text = text.replace(secret, "***")
        return text

    def _attempts(self, what: str, call: Callable[[], T], errors: tuple[type[Exception], ...]) -> T:
        """Run ``call``, retrying retryable failures (``errors``) with exponential backoff."""
        attempt = 0
        while True:
            try:
                return call()
            except errors as exc:
                error = self._classify(what, _status_of(exc), exc)
            if not error.retryable or attempt >= self.retries:
                raise error
            wait = min(self.backoff * 2**attempt, 8.0)
            log.warning("%s; retry %d of %d in %.1f s", error, attempt + 1, self.retries, wait)
            time.sleep(wait)
            attempt += 1

    def _classify(self, what: str, status: int | None, exc: Exception) -> CatalogError:
        detail = self.scrub(str(exc))[:300]
        if isinstance(exc, _Failure) and exc.html:
            return CatalogError(f"{what}: {NOT_THE_API}", retryable=False, status=status)
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
        return self._attempts(f"GET {path}", lambda: self._read(path), (_Failure,)) or None

    def _read(self, path: str) -> dict[str, Any] | None:
        """One GET as the REST client sends it; its answer as the client decodes it."""
        url = f"{self.host}/{API_VERSION}{path}"
        headers = {"Content-type": "application/json", "Authorization": f"Bearer {self._jwt}"}
        try:
            response = self.session.request(
                "GET",
                url,
                headers=headers,
                allow_redirects=False,
                verify=None,
                cookies=None,
                params=None,
                timeout=self.timeout or None,
            )
        except requests.RequestException as exc:
            raise _Failure(f"Transport failure on GET {url}: {exc}", None) from exc
        if response.status_code >= 400:
            error = _api_error(response)
            if response.status_code == 404 and error is not None:
                return None
            if error is not None:
                raise _Failure(str(error.get("message")), response.status_code)
            try:
                response.raise_for_status()
            except requests.HTTPError as exc:
                raise _Failure(str(exc), response.status_code) from exc
        if not response.text:
            return None
        try:
            answer = response.json()
        except ValueError:
            if _is_html(response):
                raise _Failure(NOT_THE_API, response.status_code, html=True) from None
            return None
        return answer if isinstance(answer, dict) else None

    def _client_call(self, call: Callable[[], T]) -> Callable[[], T]:
        """``call`` with the client's ``HtmlResponseError`` as a ``_Failure``."""
        from metadata.ingestion.ometa.client import HtmlResponseError

        def run() -> T:
            try:
                return call()
            except HtmlResponseError as exc:
                raise _Failure(NOT_THE_API, exc.status_code, html=True) from None

        return run

    def _client_errors(self) -> tuple[type[Exception], ...]:
        from metadata.ingestion.ometa.client import APIError, RestTransportError

        return (APIError, RestTransportError, requests.RequestException)

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
        call, errors = self._client_call(calls[method]), self._client_errors()
        try:
            answer = self._attempts(f"{method} {path}", call, errors)
        except ConflictError:
            if exists_ok:
                return {"conflict": True}
            log.warning("%s %s: 409 conflict, sending it once more", method, path)
            answer = self._attempts(f"{method} {path}", call, errors)
        return answer if isinstance(answer, dict) else {}

    def last_status(self) -> int | None:
        """The HTTP status of this thread's last answer (201: a PUT created, 200: updated)."""
        return self.counters.last_status()

    def add_lineage(self, request: Any, what: str) -> None:
        """``OpenMetadata.add_lineage``; its errors come back as ``{"error": ...}``: raise them."""
        metadata = self.metadata

        def call() -> None:
            result = metadata.add_lineage(request, check_patch=False, return_lineage=False)
            if isinstance(result, dict) and result.get("error"):
                match = re.match(r"Error (\d+)", str(result["error"]))
                status = int(match.group(1)) if match else None
                raise _Failure(str(result["error"]), status)

        self._attempts(f"PUT /v1/lineage {what}", self._client_call(call), self._client_errors())


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
