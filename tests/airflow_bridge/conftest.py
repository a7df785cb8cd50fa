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


class DagProcess:
    """``dag.test()`` of one DAG in a child process (so a test can signal it mid-run)."""

    def __init__(self, env: dict[str, str], dags: Path, dag_id: str, conf: dict) -> None:
        self.log_path = Path(env["AIRFLOW_HOME"]) / f"run_dag.{os.getpid()}.{id(self)}.log"
        self.log = self.log_path.open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "run_dag.py"), str(dags), dag_id, json.dumps(conf)],
            env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def result(self, timeout: float = 900) -> dict:
        """Wait for the run to end; its result, with the whole output under ``log``."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        output = self.log_path.read_text()
        self.log.close()
        lines = [line for line in output.splitlines() if line.startswith('{"state"')]
        assert lines, f"no result (exit {self.proc.returncode}):\n{output[-4000:]}"
        result = json.loads(lines[-1])
        result["log"] = output
        return result


@pytest.fixture
def start_dag(airflow_env: dict[str, str]) -> Callable[..., DagProcess]:
    def start(dags: Path, dag_id: str, conf: dict, **env: str) -> DagProcess:
        return DagProcess({**airflow_env, **env}, dags, dag_id, conf)

    return start


@pytest.fixture
def run_dag(start_dag: Callable[..., DagProcess]) -> DagRunner:
    def runner(dags: Path, dag_id: str, conf: dict, **env: str) -> dict:
        return start_dag(dags, dag_id, conf, **env).result()

    return runner
