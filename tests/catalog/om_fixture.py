"""The ``om_server`` pytest fixture: a loopback OpenMetadata API per test.

Use it from any test module with ``from tests.catalog.om_fixture import om_server  # noqa: F401``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.catalog.om_server import OMServer

SEEDED_USERS = ("onering-owner",)
SEEDED_TEAMS = ("data-platform",)


@pytest.fixture
def om_server() -> Iterator[OMServer]:
    """A started :class:`OMServer` with a seeded user and team; stopped after the test."""
    server = OMServer(users=SEEDED_USERS, teams=SEEDED_TEAMS).start()
    try:
        yield server
    finally:
        server.stop()


def call(
    server: OMServer,
    method: str,
    path: str,
    body: object = None,
    *,
    token: str | None = "",
    content_type: str = "application/json",
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One HTTP request to the server (``path`` from ``/v1``), its status and parsed JSON body.

    Args:
        server: The running server.
        method: HTTP method.
        path: Path after ``/api``, e.g. ``"/v1/tables/name/a.b.c.t"`` (already URL-quoted).
        body: JSON-serialisable body, or None.
        token: Bearer token; ``""`` means the server's own, None sends no Authorization header.
        content_type: The Content-Type header.
        timeout: Socket timeout in seconds.
    """
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token or server.token}"
    data = None if body is None else json.dumps(body)
    try:
        connection.request(method, "/api" + path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else None
