"""The dagster_graphql mode against a real Dagster webserver and daemon (`dagster dev`)."""

import functools
import json
import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_bridge.config import RenderConfig
from airflow_bridge.errors import BridgeError
from airflow_bridge.export import render, snapshot, write
from airflow_bridge.graphql import run_graphql
from airflow_bridge.processes import free_port
from onering_assets.catalog import load_catalog
from onering_assets.checks.specs import silver_checks
from onering_assets.definitions import build_definitions
from onering_assets.devserver import serving
from onering_assets.resources.locks import FileLocks
from onering_assets.settings import Settings
from tests.airflow_bridge.dagster_runs import checks_evaluated, run_status, runs_of, wait_for

pytestmark = pytest.mark.slow

TOKEN_ENV = "ONERING_TEST_DAGSTER_TOKEN"
TOKEN = "tok-3f9c1e7a-never-in-a-log"


@dataclass
class Dagster:
    url: str
    state: Path


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory, make_source) -> Iterator[Dagster]:
    state = tmp_path_factory.mktemp("state")
    env = {
        **os.environ,
        "ONERING_SOURCE_DIR": str(make_source()),
        "ONERING_PROFILE": "local",
        "ONERING_LOCK_TIMEOUT": "600",  # a run held at a lock by a test outlasts a slow cancel
    }
    with serving(state, free_port(), state / "dagster-dev.log", env=env) as url:
        yield Dagster(url, state)


@dataclass
class Proxy:
    """A loopback HTTP proxy to the webserver that checks and records Authorization."""

    target: str
    token: str
    seen: list[str | None] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def proxy(dagster: Dagster) -> Iterator[Proxy]:
    state = Proxy(dagster.url, TOKEN)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.forward()

        def do_POST(self) -> None:
            self.forward()

        def forward(self) -> None:
            auth = self.headers.get("Authorization")
            state.seen.append(auth)
            if auth != f"Bearer {state.token}":
                self.send_response(401)
                self.end_headers()
                self.wfile.write(b"unauthorized")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("host", "authorization", "content-length", "connection")
            }
            request = urllib.request.Request(
                state.target + self.path, data=body, headers=headers, method=self.command
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status, payload, kind = response.status, response.read(), response.headers
            except urllib.error.HTTPError as err:
                status, payload, kind = err.code, err.read(), err.headers
            self.send_response(status)
            self.send_header("Content-Type", kind.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_graphql_mode_launches_polls_and_summarizes(dagster: Dagster) -> None:
    tags = {"airflow/dag_id": "onering_silver", "airflow/try_number": "1"}
    summary = run_graphql(
        dagster.url,
        ["bronze/airlines", "silver/airlines"],
        None,
        None,
        tags,
        poll_s=0.5,
        timeout_s=300,
    )
    assert summary["success"], summary
    assert set(summary["rows"]) == {"bronze/airlines", "silver/airlines"}
    names = {(c["asset"], c["check"]) for c in summary["checks"]}
    assert ("silver/airlines", "reconciliation") in names
    assert all(c["passed"] for c in summary["checks"])
    assert summary["retryable"] is False and summary["failed_checks"] == []


def test_graphql_mode_reports_refused_runs(dagster: Dagster) -> None:
    with pytest.raises(BridgeError, match="refused the run"):
        run_graphql(dagster.url, ["gold/no_such_mart"], None, None, {}, timeout_s=30)


def export_graphql_dag(tmp_path: Path, url: str, select: str, **render_args) -> Path:
    config = replace(
        RenderConfig(),
        grouping="one",
        select=select,
        mode="dagster_graphql",
        dagster_url=url,
        dagster_token_env=TOKEN_ENV,
        **render_args,
    )
    defs = build_definitions(Settings(profile="local", state_dir=tmp_path / "export"))
    write(tmp_path / "dags", render(snapshot(defs, config), config))
    return tmp_path / "dags"


def test_bearer_token_is_sent_and_never_logged(tmp_path: Path, proxy: Proxy, run_dag) -> None:
    dags = export_graphql_dag(tmp_path, proxy.url, 'key:"bronze/airlines"', retries=0)
    assert TOKEN not in "".join(p.read_text() for p in dags.iterdir())
    result = run_dag(dags, "onering", {}, **{TOKEN_ENV: TOKEN})
    teardown = {"publish_lineage": "success"}  # publishes nothing: no catalog is set
    assert result["tasks"] == {"bronze__airlines": "success", **teardown}, result["log"][-3000:]
    assert proxy.seen and set(proxy.seen) == {f"Bearer {TOKEN}"}  # every request carried it
    assert "launched Dagster run" in result["log"]  # the task log is in the output
    assert TOKEN not in result["log"]
    assert result["xcom"]["bronze__airlines"]["run_id"]
    assert TOKEN not in json.dumps(result["xcom"])

    # Refused by the server: the error is reported, the token is not.
    proxy.token = "another-token"
    refused = run_dag(dags, "onering", {}, **{TOKEN_ENV: TOKEN})
    assert refused["tasks"] == {"bronze__airlines": "failed", **teardown}
    assert refused["state"] == "failed"
    assert "refused the run" in refused["log"]
    assert TOKEN not in refused["log"]


def test_killed_task_terminates_its_dagster_run_and_the_retry_succeeds(
    tmp_path: Path, dagster: Dagster, proxy: Proxy, start_dag
) -> None:
    """Airflow's SIGTERM reaches on_kill, which terminates the launched run (CANCELED)."""
    dags = export_graphql_dag(
        tmp_path, proxy.url, '+key:"silver/weather"', retries=1, retry_delay_s=0
    )
    status = functools.partial(run_status, dagster.state, "silver__weather", webserver=True)
    # The first run waits at Silver weather's publication lock, held here, so it is inside
    # its step when the task is killed (a one-month build can finish before the kill lands).
    with FileLocks(dagster.state / "clickhouse.locks").hold(
        "publish:silver.weather", what="a test"
    ):
        run = start_dag(dags, "onering", {"partition": "2013-01"}, **{TOKEN_ENV: TOKEN})
        wait_for(lambda: status(1) == "STARTED", "the run")
        checks = len(silver_checks(load_catalog().sql_table("silver", "weather")))
        wait_for(
            lambda: checks_evaluated(dagster.state, "silver__weather", 1, webserver=True) >= checks,
            "the audit",
        )
        run.proc.send_signal(signal.SIGTERM)
        # A cancel on a loaded CI machine (the run worker's step is interrupted, then the
        # run is marked) has taken over 90 s: wait for any end, then say which.
        wait_for(lambda: status(1) in {"CANCELED", "SUCCESS", "FAILURE"}, "the cancel", 240)
    assert status(1) == "CANCELED", f"the first run ended {status(1)}, not CANCELED"
    result = run.result()
    assert result["tasks"]["silver__weather"] == "success", result["log"][-3000:]
    assert result["tries"]["silver__weather"] == 2
    first, second = runs_of(dagster.state, "silver__weather")
    assert (first.status.value, second.status.value) == ("CANCELED", "SUCCESS")
    assert "terminating Dagster run" in result["log"]
