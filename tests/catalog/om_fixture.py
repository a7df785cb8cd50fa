"""The ``om_server`` pytest fixture: a loopback OpenMetadata API per test.

Use it from any test module with ``from tests.catalog.om_fixture import om_server  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import Iterator

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
