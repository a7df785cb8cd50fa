"""Failures: 401 is a clear "token rejected" (exit 2), 409 and transient 5xx are retried,
persistent 5xx and timeouts end in exit 3 after bounded retries, and a half-finished
publish is never reported as success. No token appears in any output.

No OpenMetadata server can run on these machines; the loopback server of ``om_server.py``
stands in for it and injects the failures (``fail_next``, ``delay_next``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.catalog.om_server import OMServer
from tests.catalog.test_publish_support import (
    SECRET,
    assert_no_secret,
    demo_document,
    need_om_env,
    publish,
)


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_om_env()
    work = tmp_path_factory.mktemp("failures")
    path = work / "document.json"
    path.write_text(json.dumps(demo_document(work)))
    return path


@pytest.fixture
def server() -> Iterator[OMServer]:
    served = OMServer(users=("onering-owner",), teams=("data-platform",)).start()
    try:
        yield served
    finally:
        served.stop()


def test_rejected_token_is_a_clear_error_and_never_printed(
    document: Path, server: OMServer
) -> None:
    wrong = server.token[:-6] + "abcdef"
    result = publish(document, server, token=wrong)
    assert result.code == 2
    assert result.summary["ok"] is False
    assert "token rejected" in result.summary["errors"][0]
    assert "ONERING_OPENMETADATA_JWT" in result.summary["errors"][0]
    assert len(server.requests) == 1  # no retry of a 401
    assert_no_secret(wrong, result.stdout, result.stderr)
    assert_no_secret(server.token, result.stdout, result.stderr)


def test_transient_500_and_409_are_retried(document: Path, server: OMServer) -> None:
    server.fail_next(500, count=2, path_prefix="/tables")
    server.fail_next(409, count=1, path_prefix="/dataQuality/testSuites")
    result = publish(document, server, env={"ONERING_OPENMETADATA_RETRIES": "3"})
    assert result.code == 0, result.stderr
    assert result.summary["ok"] is True
    statuses = [r.status for r in server.requests if r.path == "/v1/tables" and r.method == "GET"]
    assert statuses[:3] == [500, 500, 200]
    suites = [r.status for r in server.requests if r.path.startswith("/v1/dataQuality/testSuites")]
    assert suites[:2] == [409, 201]
    assert_no_secret(server.token, result.stdout, result.stderr)


def test_persistent_5xx_mid_publish_is_not_success(document: Path, server: OMServer) -> None:
    server.fail_next(503, count=100, path_prefix="/lineage")
    result = publish(document, server, env={"ONERING_OPENMETADATA_RETRIES": "2"})
    assert result.code == 3
    summary = result.summary
    assert summary["ok"] is False
    assert "HTTP 503" in summary["errors"][0] and summary["errors"][0].startswith("lineage edges")
    # Bounded: the first edge was tried 1 + 2 times, then the publish stopped.
    assert [r.status for r in server.requests if r.path.startswith("/v1/lineage")] == [503] * 3
    assert summary["not_written"][0] == "lineage edges"
    assert "test suites and test cases" in summary["not_written"]
    assert any(w.startswith("created table ") for w in summary["written"])
    assert_no_secret(server.token, result.stdout, result.stderr)


def test_timeouts_are_retried_then_exit_3(document: Path, server: OMServer) -> None:
    server.delay_next(2.0, count=10, path_prefix="/classifications")
    env = {"ONERING_OPENMETADATA_TIMEOUT": "0.3", "ONERING_OPENMETADATA_RETRIES": "1"}
    result = publish(document, server, env=env)
    assert result.code == 3
    assert result.summary["ok"] is False
    assert "unreachable or timed out" in result.summary["errors"][0]
    assert result.summary["requests"] == 2  # one attempt and one retry
    assert_no_secret(server.token, result.stdout, result.stderr)


def test_unreachable_server_is_retryable(document: Path, tmp_path: Path) -> None:
    stopped = OMServer().start()
    stopped.stop()
    result = publish(document, stopped, env={"ONERING_OPENMETADATA_RETRIES": "1"})
    assert result.code == 3
    assert result.summary["ok"] is False
    assert_no_secret(stopped.token, result.stdout, result.stderr)


def test_bad_document_is_not_retryable(tmp_path: Path, server: OMServer) -> None:
    path = tmp_path / "document.json"
    path.write_text(json.dumps({"version": 2, "entities": []}))
    result = publish(path, server)
    assert result.code == 2
    assert "version 2" in result.summary["errors"][0]
    assert server.requests == []


class _WebPage(BaseHTTPRequestHandler):
    """A web UI where the API was expected: every GET answers an HTML page."""

    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><html><body>OpenMetadata</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_an_html_page_instead_of_the_api_is_not_retryable(document: Path) -> None:
    web = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}"
        result = publish(document, None, env={"ONERING_OPENMETADATA_URL": url})
    finally:
        web.shutdown()
        web.server_close()
    assert result.code == 2
    assert result.summary["ok"] is False
    assert "HTML page" in result.summary["errors"][0]
    assert "ONERING_OPENMETADATA_URL" in result.summary["errors"][0]
    assert result.summary["requests"] == 1  # no retry
    assert_no_secret(SECRET, result.stdout, result.stderr)
