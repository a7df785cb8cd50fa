"""A standalone Spark cluster (one master, one worker) on 127.0.0.1, from the pyspark wheel.

pyspark ships ``bin/spark-class`` and the standalone ``Master`` and ``Worker`` classes, but
not ``sbin/start-master.sh``/``start-worker.sh``, so the daemons are started here the way
those scripts start them (``spark-class org.apache.spark.deploy.master.Master``): bound to
loopback on free ports, web UIs included (``SPARK_LOCAL_IP``), the REST submission server
(on by default in Spark 4, port 6066) off, the worker's files under one folder. Runs reach
it as they reach any cluster: ``ONERING_SPARK_MASTER=spark://127.0.0.1:<port>``.

Used by the tests and the benchmark; a user's own cluster needs none of this.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from airflow_bridge.processes import free_port
from onering_assets.errors import ConfigError

START_TIMEOUT_S = 180.0
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


@dataclass
class SparkCluster:
    folder: Path
    port: int
    ui_port: int
    worker_ui_port: int = 0
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def master(self) -> str:
        """What ``ONERING_SPARK_MASTER`` is set to for runs to use this cluster."""
        return f"spark://127.0.0.1:{self.port}"

    def status(self) -> dict:
        """The master's own view (``/json``): workers, running and completed applications."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
            return json.load(r)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


def spark_home() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("pyspark is not installed; run `make setup`.")
    home = Path(next(iter(spec.submodule_search_locations)))
    if not (home / "bin" / "spark-class").is_file():
        raise ConfigError(f"{home} has no bin/spark-class: not a full pyspark install.")
    return home


def _env(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        "SPARK_LOG_DIR": str(folder / "logs"),
    }


def _daemon(folder: Path, name: str, args: list[str]) -> subprocess.Popen:
    log = (folder / "logs" / f"{name}.log").open("ab")
    return subprocess.Popen(  # spark-class execs the JVM: this pid is the daemon's
        [str(spark_home() / "bin" / "spark-class"), *args],
        env=_env(folder),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start(folder: Path, cores: int = 2, memory: str = "2g") -> SparkCluster:
    """Start a master and a worker; return once the worker is ALIVE at the master."""
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "work").mkdir(exist_ok=True)
    cluster = SparkCluster(folder, free_port(), free_port(), free_port())
    host = ["--host", "127.0.0.1"]
    cluster.processes.append(
        _daemon(
            folder,
            "master",
            [MASTER, *host, "--port", str(cluster.port), "--webui-port", str(cluster.ui_port)],
        )
    )
    worker = [WORKER, *host, "--port", str(free_port())]
    worker += ["--webui-port", str(cluster.worker_ui_port)]
    worker += ["--cores", str(cores), "--memory", memory, "--work-dir", str(folder / "work")]
    cluster.processes.append(_daemon(folder, "worker", [*worker, cluster.master]))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if any(w.get("state") == "ALIVE" for w in cluster.status().get("workers", [])):
                return cluster
        except OSError:
            pass
        if any(p.poll() is not None for p in cluster.processes):
            break
        time.sleep(1)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((folder / "logs").glob("*.log")))
    stop(cluster)
    raise RuntimeError(f"Spark cluster in {folder} did not come up\n{logs}")


def stop(cluster: SparkCluster) -> None:
    """SIGTERM the worker, then the master (the scripts' own way); kill after 30 s."""
    for process in reversed(cluster.processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
