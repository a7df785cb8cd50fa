"""A local Airflow 3 for the exported DAGs: start, trigger, follow and stop it.

``onering airflow up`` runs the four Airflow 3 components (api-server, scheduler,
dag-processor, triggerer) as background processes bound to 127.0.0.1, with ``AIRFLOW_HOME``
(SQLite metadata DB, logs, generated admin password) under the OneRing state folder and the
DAGs folder on the export. The REST API (``/api/v2``) is how ``trigger`` and ``status``
talk to it, exactly as any other client would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_bridge.errors import BridgeError
from airflow_bridge.partitions import keys
from airflow_bridge.processes import alive, port_in_use, stop_groups

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USER = "admin"
DEFAULT_PORT = 8080
# What the scheduler loads before it starts (``module`` or ``module:function`` to call):
# its LocalExecutor workers, and the task processes they fork, inherit it, so an in_process
# task does not pay for importing Dagster, building the definitions or importing GX.
PRELOAD = ("onering_assets.runner:prepare_worker",)
FINISHED = {"success", "failed"}
# Task states worth a line when following a run (not none/scheduled/queued).
NOTEWORTHY = {"running", "success", "failed", "upstream_failed", "skipped", "up_for_retry"}


@dataclass(frozen=True)
class LocalAirflow:
    """Where a local Airflow lives and how to reach it."""

    home: Path
    dags_folder: Path
    port: int = DEFAULT_PORT
    python: str = sys.executable
    preload: tuple[str, ...] = PRELOAD

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids_file(self) -> Path:
        return self.home / "onering-pids.json"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def log_file(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Airflow's settings, as environment variables so nothing else is needed."""
        return {
            **(os.environ if base is None else base),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # chDB has one owner at a time: more parallel tasks would only queue on its lock.
            "AIRFLOW__CORE__PARALLELISM": "2",
            # Runs start when triggered; exported DAGs with a partition end schedule nothing.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }

    # -- processes -------------------------------------------------------------------

    def running(self) -> dict[str, int]:
        """Components started by ``up`` that are still alive, by name."""
        if not self.pids_file.exists():
            return {}
        pids: dict[str, int] = json.loads(self.pids_file.read_text())
        return {name: pid for name, pid in pids.items() if alive(pid)}

    def command(self, component: str) -> list[str]:
        if component == "scheduler" and self.preload:
            steps = []
            for entry in self.preload:
                module, _, function = entry.partition(":")
                steps.append(f"import {module}")
                if function:
                    steps.append(f"{module}.{function}()")
            boot = "; ".join([*steps, "from airflow.__main__ import main", "main()"])
            return [self.python, "-c", boot, "scheduler"]
        args = [component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        return [self.python, "-m", "airflow", *args]

    def up(self, *, timeout_s: float = 180, say: Callable[[str], None] = print) -> dict[str, Any]:
        """Migrate the metadata DB, start the components, wait until the DAGs are loaded."""
        started = self.running()
        if len(started) == len(COMPONENTS):
            say(f"Airflow is already running at {self.url} (pids {sorted(started.values())}).")
            return self.wait_ready(timeout_s=timeout_s, say=say)
        if started:
            self.down(say=say)
        if port_in_use(self.port):
            raise BridgeError(
                f"port {self.port} on 127.0.0.1 is in use; stop what uses it or pass --port."
            )
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        env = self.env()
        say(f"Migrating the Airflow metadata DB in {self.home} ...")
        migrate = subprocess.run(
            [self.python, "-m", "airflow", "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise BridgeError(f"`airflow db migrate` failed:\n{migrate.stderr[-3000:]}")
        pids = {}
        for component in COMPONENTS:
            with self.log_file(component).open("ab") as log:
                proc = subprocess.Popen(
                    self.command(component),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            pids[component] = proc.pid
            say(f"started {component} (pid {proc.pid}), log {self.log_file(component)}")
        self.pids_file.write_text(json.dumps(pids, indent=1) + "\n")
        try:
            return self.wait_ready(timeout_s=timeout_s, say=say)
        except BridgeError:
            self.down(say=say)
            raise

    def down(self, *, timeout_s: float = 30, say: Callable[[str], None] = print) -> list[str]:
        """Stop every component ``up`` started (their whole process groups)."""
        running = self.running()
        for name, pid in running.items():
            say(f"stopping {name} (pid {pid})")
        killed = stop_groups(running.values(), timeout_s=timeout_s)
        for name, pid in running.items():
            if pid in killed:
                say(f"{name} (pid {pid}) did not stop in {timeout_s:g} s: killed")
        self.pids_file.unlink(missing_ok=True)
        return sorted(running)

    def wait_ready(self, *, timeout_s: float, say: Callable[[str], None]) -> dict[str, Any]:
        """Block until all components report healthy and every exported DAG is parsed."""
        expected = sorted(p.stem for p in self.dags_folder.glob("*.py"))
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            state = self._readiness(expected)
            if state["ready"]:
                return state
            if state["summary"] != last:
                say(f"waiting for Airflow: {state['summary']}")
                last = state["summary"]
            dead = [c for c in COMPONENTS if c not in self.running()]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"not ready in {timeout_s:g} s"
                tails = "\n".join(
                    f"--- {c} ({self.log_file(c)}):\n{_tail(self.log_file(c))}"
                    for c in (dead or COMPONENTS)
                )
                raise BridgeError(f"Airflow did not start: {why} ({state['summary']}).\n{tails}")
            time.sleep(1)

    def _readiness(self, expected: list[str]) -> dict[str, Any]:
        try:
            health = _request("GET", f"{self.url}/api/v2/monitor/health")
        except BridgeError:
            return {"ready": False, "summary": "api-server not answering yet"}
        unhealthy = sorted(k for k, v in health.items() if v.get("status") != "healthy")
        if unhealthy:
            return {"ready": False, "summary": f"{', '.join(unhealthy)} not healthy yet"}
        client = self.client()
        dags = client.get("/dags", limit=1000)["dags"]
        loaded = sorted(d["dag_id"] for d in dags)
        errors = client.get("/importErrors")["import_errors"]
        if errors:
            detail = "\n".join(f"{e['filename']}: {e['stack_trace'][-800:]}" for e in errors)
            raise BridgeError(f"the exported DAGs failed to import:\n{detail}")
        missing = [d for d in expected if d not in loaded]
        if missing:
            return {"ready": False, "summary": f"parsing DAGs ({len(loaded)}/{len(expected)})"}
        return {"ready": True, "summary": "ready", "dags": loaded, "health": health}

    def client(self) -> AirflowClient:
        if not self.passwords_file.exists():
            raise BridgeError(f"Airflow is not set up in {self.home}; run `onering airflow up`.")
        password = json.loads(self.passwords_file.read_text())[USER]
        return AirflowClient.login(self.url, USER, password)


class AirflowClient:
    """The few Airflow REST API v2 calls the CLI needs, with a JWT from the auth manager."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    def login(cls, url: str, username: str, password: str) -> AirflowClient:
        body = {"username": username, "password": password}
        return cls(url, _request("POST", f"{url}/auth/token", body)["access_token"])

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return _request(
            "GET", f"{self.url}/api/v2{path}{'?' + query if query else ''}", None, self.headers
        )

    def trigger(
        self, dag_id: str, *, partition_key: str | None, conf: dict[str, Any]
    ) -> dict[str, Any]:
        """Queue a run now; a partitioned DAG run carries ``partition_key`` downstream."""
        # A run id of our own: if a retried POST finds its first attempt did commit (409),
        # the run is fetched instead of a second one being queued.
        run_id = f"manual__onering__{time.strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(3)}"
        body: dict[str, Any] = {"logical_date": None, "conf": conf, "dag_run_id": run_id}
        if partition_key:
            body["partition_key"] = partition_key
        try:
            return _request("POST", f"{self.url}/api/v2/dags/{dag_id}/dagRuns", body, self.headers)
        except BridgeError as err:
            if "HTTP 409" not in str(err):
                raise
            return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: t["state"] for t in tis}

    def follow(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout_s: float,
        say: Callable[[str], None],
        poll_s: float = 2,
    ) -> dict[str, Any]:
        """Wait for a run to finish, saying each task state change; the final run."""
        seen: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            for task, state in sorted(self.task_states(dag_id, run_id).items()):
                if state in NOTEWORTHY and seen.get(task) != state:
                    say(f"  {dag_id}.{task}: {state}")
                    seen[task] = state
            if run["state"] in FINISHED:
                run["tasks"] = seen
                return run
            if time.monotonic() > deadline:
                raise BridgeError(
                    f"{dag_id} run {run_id} still {run['state']} after {timeout_s:g} s."
                )
            time.sleep(poll_s)

    def wait_for_keyed_run(
        self, dag_id: str, partition_key: str, *, after: str, timeout_s: float, poll_s: float = 2
    ) -> dict[str, Any]:
        """The run of ``dag_id`` for ``partition_key`` queued at or after ``after``.

        ``after`` is an ISO time; an asset-triggered run appears a little after its trigger.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.get(f"/dags/{dag_id}/dagRuns", order_by="-id", limit=20)["dag_runs"]
            for run in runs:
                if run["partition_key"] == partition_key and run["queued_at"] >= after:
                    return run
            time.sleep(poll_s)
        raise BridgeError(
            f"{dag_id} was not triggered for partition {partition_key} in {timeout_s:g} s."
        )


def exported_plans(dags_folder: Path) -> dict[str, dict[str, Any]]:
    """DAG id -> plan, as exported."""
    return {
        p.name.removesuffix(".plan.json"): json.loads(p.read_text())["plan"]
        for p in sorted(dags_folder.glob("*.plan.json"))
    }


def check_trigger(dags_folder: Path, dag_id: str, partition: str | None) -> None:
    """Refuse, before anything runs, a DAG that is not exported or a partition it lacks."""
    plans = exported_plans(dags_folder)
    if dag_id not in plans:
        known = ", ".join(sorted(plans)) or "none"
        raise BridgeError(f"no exported DAG {dag_id!r} in {dags_folder} (exported: {known}).")
    spec = plans[dag_id]["partitions"]
    if partition and spec is None:
        raise BridgeError(f"{dag_id} is not partitioned; trigger it without --partition.")
    if partition and partition not in keys(spec):
        raise BridgeError(
            f"partition {partition!r} is not one of {dag_id}'s ({spec['start']}..{spec['end']})."
        )


def downstream_dags(dags_folder: Path, dag_id: str) -> list[str]:
    """DAGs an asset-triggered cascade from ``dag_id`` reaches, in the order they run."""
    plans = exported_plans(dags_folder)
    outlets = {d: {o for t in p["tasks"] for o in t["outlets"]} for d, p in plans.items()}
    order, frontier = [], [dag_id]
    while frontier:
        made = set().union(*(outlets[d] for d in frontier))
        frontier = [
            d
            for d, p in plans.items()
            if d not in order
            and d != dag_id
            and p["schedule"] == "assets"
            and made & set(p["schedule_assets"])
        ]
        order += frontier
    return order


# Airflow on SQLite answers HTTP 500 "Database error" while another component holds the
# database lock (seen under load on 2 cores); the request is safe to repeat.
_BUSY_RETRIES = 5


def _request(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Any:
    for attempt in range(_BUSY_RETRIES - 1):
        try:
            return _request_once(method, url, body, headers)
        except BridgeError as err:
            if not ("HTTP 500" in str(err) and "Database error" in str(err)):
                raise
            time.sleep(1.0 + attempt)
    return _request_once(method, url, body, headers)


def _request_once(
    method: str, url: str, body: dict[str, Any] | None, headers: dict[str, str] | None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("detail", detail)
        raise BridgeError(f"Airflow API {method} {url}: HTTP {err.code}: {detail}") from err
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        raise BridgeError(f"Airflow API at {url} is not reachable ({err}).") from err


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
