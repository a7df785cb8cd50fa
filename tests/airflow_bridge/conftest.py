"""A real Airflow 3 home (SQLite metadata DB) per test session, used from subprocesses."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env


DagRunner = Callable[..., dict]


@pytest.fixture
def run_dag(airflow_env: dict[str, str]) -> DagRunner:
    def runner(dags: Path, dag_id: str, conf: dict, **env: str) -> dict:
        full_env = {**airflow_env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags), **env}
        proc = subprocess.run(
            [sys.executable, str(HERE / "run_dag.py"), str(dags), dag_id, json.dumps(conf)],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no result (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        result = json.loads(lines[-1])
        result["log"] = proc.stdout + proc.stderr
        return result

    return runner
