"""The dagster_graphql mode against a real Dagster webserver and daemon (`dagster dev`)."""

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from airflow_bridge.errors import BridgeError
from airflow_bridge.graphql import run_graphql
from airflow_bridge.processes import free_port, stop_groups
from onering_assets.runner import INSTANCE_CONFIG
from onering_assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dagster_url(tmp_path_factory: pytest.TempPathFactory, make_source) -> Iterator[str]:
    state = tmp_path_factory.mktemp("state")
    home = state / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(INSTANCE_CONFIG))
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(make_source()),
        "ONERING_PROFILE": "local",
    }
    log = (state / "dagster-dev.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-m",
            "onering_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = (state / "dagster-dev.log").read_text()[-2000:]
                    pytest.fail(f"dagster dev did not start: {output}")
                time.sleep(0.5)
        yield url
    finally:
        stop_groups([proc.pid])
        proc.wait()
        log.close()


def test_graphql_mode_launches_polls_and_summarizes(dagster_url: str) -> None:
    tags = {"airflow/dag_id": "onering_silver", "airflow/try_number": "1"}
    summary = run_graphql(
        dagster_url,
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


def test_graphql_mode_reports_refused_runs(dagster_url: str) -> None:
    with pytest.raises(BridgeError, match="refused the run"):
        run_graphql(dagster_url, ["gold/no_such_mart"], None, None, {}, timeout_s=30)
