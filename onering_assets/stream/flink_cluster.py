"""A standalone Flink cluster (one JobManager, one TaskManager) on 127.0.0.1, from the wheels.

The apache-flink wheels ship Flink's own cluster scripts (``pyflink/bin/jobmanager.sh``,
``taskmanager.sh``) and its distribution jar, so the Flink environment can run a real
standalone session cluster: the same daemons a user's cluster runs, here bound to loopback
on free ports, its configuration, logs and pid files in one folder. Jobs reach it as they
reach any cluster: ``ONERING_FLINK_JOBMANAGER=127.0.0.1:<rest port>``.

Used by the tests and the benchmark; a user's own cluster needs none of this.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from airflow_bridge.processes import free_port
from onering_assets.errors import ConfigError
from onering_assets.stream.flink_resource import FLINK_ENV

START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class FlinkCluster:
    folder: Path
    rest_port: int

    @property
    def jobmanager(self) -> str:
        """What ``ONERING_FLINK_JOBMANAGER`` is set to for jobs to run here."""
        return f"127.0.0.1:{self.rest_port}"

    def rest(self, path: str) -> dict:
        url = f"http://{self.jobmanager}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def pids(self) -> list[int]:
        return [
            int(line)
            for pid_file in sorted((self.folder / "pids").glob("*.pid"))
            for line in pid_file.read_text().split()
            if line.strip().isdigit()
        ]


def pyflink_home(venv: Path = FLINK_ENV / ".venv") -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages/pyflink"))
    if not found or not (found[0] / "bin" / "jobmanager.sh").is_file():
        raise ConfigError(
            f"No Flink distribution under {venv}: run `make setup` (it creates envs/flink/.venv)."
        )
    return found[0]


def configuration(home: Path, rest_port: int) -> dict:
    """The shipped ``conf/config.yaml`` with every listener on 127.0.0.1 and small memory."""
    conf = yaml.safe_load((home / "conf" / "config.yaml").read_text())
    loopback = "127.0.0.1"
    conf["jobmanager"].update(
        {
            "bind-host": loopback,
            "rpc": {"address": loopback, "port": free_port()},
            "memory": {"process": {"size": "1024m"}},
        }
    )
    conf["taskmanager"].update(
        {
            "bind-host": loopback,
            "host": loopback,
            "numberOfTaskSlots": 2,
            "memory": {"process": {"size": "1280m"}},
        }
    )
    conf["rest"] = {"address": loopback, "bind-address": loopback, "port": rest_port}
    conf["blob"] = {"server": {"port": str(free_port())}}
    return conf


def _env(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLINK_CONF_DIR": str(folder / "conf"),
        "FLINK_LOG_DIR": str(folder / "log"),
        "FLINK_PID_DIR": str(folder / "pids"),
    }


def _daemon(home: Path, folder: Path, script: str, action: str) -> None:
    subprocess.run(
        ["bash", str(home / "bin" / script), action],
        env=_env(folder),
        check=True,
        capture_output=True,
        timeout=120,
    )


def start(folder: Path) -> FlinkCluster:
    """Start a JobManager and a TaskManager; return once the TaskManager has registered."""
    home = pyflink_home()
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "conf").mkdir(parents=True)
    for sub in ("log", "pids"):
        (folder / sub).mkdir()
    for name in (home / "conf").iterdir():
        if name.name != "config.yaml":
            shutil.copy(name, folder / "conf" / name.name)
    rest_port = free_port()
    conf = configuration(home, rest_port)
    (folder / "conf" / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    cluster = FlinkCluster(folder, rest_port)
    _daemon(home, folder, "jobmanager.sh", "start")
    _daemon(home, folder, "taskmanager.sh", "start")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if cluster.rest("/overview").get("taskmanagers", 0) >= 1:
                return cluster
        except OSError:
            pass
        time.sleep(1)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((folder / "log").glob("*.log")))
    stop(cluster)
    raise RuntimeError(
        f"Flink cluster in {folder} did not come up in {START_TIMEOUT_S:.0f} s\n{logs}"
    )


def stop(cluster: FlinkCluster) -> None:
    """Stop the TaskManager, then the JobManager; kill whatever is left after 30 s."""
    home = pyflink_home()
    pids = cluster.pids()
    for script in ("taskmanager.sh", "jobmanager.sh"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _daemon(home, cluster.folder, script, "stop")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.5)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, 9)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
