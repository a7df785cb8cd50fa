"""The transport under every request: counting, and the dry run's recorded empty server.

Both adapters are mounted on the plain ``requests`` session of the reads and on the
``OpenMetadata`` client's session of the writes (one adapter, one connection pool).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter


@dataclass
class Counters:
    """What was sent: every HTTP request, and the writes among them."""

    requests: int = 0
    writes: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: threading.local = field(default_factory=threading.local)

    def count(self, method: str, path: str, body: Any, record: bool) -> None:
        """Count one request (and keep it, for a dry run)."""
        with self.lock:
            self.requests += 1
            self.writes += method != "GET"
            if record:
                self.log.append({"method": method, "path": path, "body": body})

    def answered(self, status: int) -> None:
        """Remember the HTTP status of this thread's last response."""
        self.last.status = status

    def last_status(self) -> int | None:
        """The HTTP status of this thread's last response (a PUT's 201 created, 200 updated)."""
        return getattr(self.last, "status", None)


def path_of(url: str, base_path: str) -> str:
    """The request's path (and query) below the API root's path."""
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
        path = path_of(request.url or "", self.base_path)
        self.counters.count(request.method or "GET", path, None, record=False)
        response = super().send(request, *args, **kwargs)
        self.counters.answered(response.status_code)
        return response


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
        path = path_of(request.url or "", self.base_path)
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
        self.counters.answered(response.status_code)
        return response

    def close(self) -> None:
        """Nothing to release."""
