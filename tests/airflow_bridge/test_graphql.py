"""The dagster_graphql mode against a real Dagster webserver and daemon (`dagster dev`)."""

import os
from collections.abc import Iterator

import pytest

from airflow_bridge.errors import BridgeError
from airflow_bridge.graphql import run_graphql
from airflow_bridge.processes import free_port
from onering_assets.devserver import serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dagster_url(tmp_path_factory: pytest.TempPathFactory, make_source) -> Iterator[str]:
    state = tmp_path_factory.mktemp("state")
    env = {**os.environ, "ONERING_SOURCE_DIR": str(make_source()), "ONERING_PROFILE": "local"}
    with serving(state, free_port(), state / "dagster-dev.log", env=env) as url:
        yield url


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
