"""The ``published`` fixture shared by the publisher tests (registered in ``conftest.py``).

``published``: one dry run, then a first and a second publish of the demo document to one
loopback server, for the whole session. Modules that use it only read it (the request logs
and the server's state); tests that change the server build their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.catalog.om_server import OMServer
from tests.catalog.test_publish_support import Result, demo_document, need_om_env, publish


@dataclass
class Published:
    """The demo document, its server, and the three publishes with their request logs."""

    document: dict[str, Any]
    server: OMServer
    dry: Result
    dry_requests: list[dict[str, Any]]
    first: Result
    first_log: list[Any]
    second: Result
    second_log: list[Any]


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """A dry run, then a first and a second publish of the demo document to one server."""
    need_om_env()
    work = tmp_path_factory.mktemp("publish")
    document = demo_document(work)
    path = work / "document.json"
    path.write_text(json.dumps(document))
    server = OMServer(users=("onering-owner",), teams=("data-platform",)).start()
    try:
        dry = publish(path, None, dry_run=work / "dry.json")
        dry_requests = json.loads((work / "dry.json").read_text())["requests"]
        first = publish(path, server)
        first_log = list(server.requests)
        server.reset_log()
        # PYTHONPROFILEIMPORTTIME (python -X importtime): stderr names every imported module.
        second = publish(path, server, env={"PYTHONPROFILEIMPORTTIME": "1"})
        second_log = list(server.requests)
        yield Published(document, server, dry, dry_requests, first, first_log, second, second_log)
    finally:
        server.stop()
