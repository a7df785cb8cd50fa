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
import re
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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
    log = (folder / "logs" / f"{name}.log").open("wb")  # its ports are read from it: this run's
    return subprocess.Popen(  # spark-class execs the JVM: this pid is the daemon's
        [str(spark_home() / "bin" / "spark-class"), *args],
        env=_env(folder),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports nothing listens on (held together, so never one twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _bound(folder: Path, name: str, service: str) -> int | None:
    """The port Spark says ``service`` started on (it moves up one if another process took it)."""
    log = folder / "logs" / f"{name}.log"
    found = re.findall(rf"started service '{service}' on port (\d+)", log.read_text())
    return int(found[-1]) if found else None


def _wait(cluster: SparkCluster, deadline: float, ready) -> bool:
    while time.monotonic() < deadline:
        try:
            if ready():
                return True
        except (OSError, ValueError):  # not listening yet, or not the master's JSON yet
            pass
        if any(p.poll() is not None for p in cluster.processes):
            return False
        time.sleep(0.5)
    return False


def start(folder: Path, cores: int = 2, memory: str = "2g") -> SparkCluster:
    """Start a master, then a worker; return once the worker is ALIVE at the master.

    The ports asked for are free when chosen, but another process may take one before the JVM
    binds it (Spark then moves up a port): the cluster records the ports its logs name.
    """
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "work").mkdir(exist_ok=True)
    port, ui_port, worker_port, worker_ui_port = _free_ports(4)
    cluster = SparkCluster(folder, port, ui_port, worker_ui_port)
    host = ["--host", "127.0.0.1"]
    master = [MASTER, *host, "--port", str(port), "--webui-port", str(ui_port)]
    cluster.processes.append(_daemon(folder, "master", master))
    deadline = time.monotonic() + START_TIMEOUT_S

    def master_up() -> bool:
        cluster.port = _bound(folder, "master", "sparkMaster") or 0
        cluster.ui_port = _bound(folder, "master", "MasterUI") or 0
        return (
            bool(cluster.port and cluster.ui_port) and cluster.status().get("url") == cluster.master
        )

    if _wait(cluster, deadline, master_up):
        worker = [WORKER, *host, "--port", str(worker_port)]
        worker += ["--webui-port", str(worker_ui_port)]
        worker += ["--cores", str(cores), "--memory", memory, "--work-dir", str(folder / "work")]
        cluster.processes.append(_daemon(folder, "worker", [*worker, cluster.master]))

        def worker_alive() -> bool:
            cluster.worker_ui_port = _bound(folder, "worker", "WorkerUI") or 0
            workers = cluster.status().get("workers", [])
            return bool(cluster.worker_ui_port) and any(w.get("state") == "ALIVE" for w in workers)

        if _wait(cluster, deadline, worker_alive):
            return cluster
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
