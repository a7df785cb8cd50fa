"""A local Airflow 3 for the exported DAGs: start, trigger, follow and stop it.

``onering airflow up`` runs the four Airflow 3 components (api-server, scheduler,
dag-processor, triggerer) as background processes bound to 127.0.0.1, with ``AIRFLOW_HOME``
(SQLite metadata DB, logs, generated admin password) under the OneRing state folder and the
DAGs folder on the export. The REST API (``/api/v2``) is how ``trigger`` and ``status``
talk to it, exactly as any other client would.

Starting it runs nothing by itself: DAGs are created paused, and ``up`` unpauses those that
Airflow sees for the first time and whose schedule has no run due (asset-triggered DAGs,
and cron DAGs whose partitions' window has no run left or none yet); any other stays paused
and ``up`` says why. ``up`` also prints every run that does start because Airflow started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_bridge.client import AirflowClient, request_json
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
# Runs Airflow queues by itself (not triggered by anyone): what starting it may cause.
SELF_STARTED = {"scheduled", "asset_triggered"}
# Latency settings measured by bench/airflow_month.py (docs/performance.md, "One month
# through Airflow"); a value already in the environment wins. Airflow 3.3's task supervisor
# notices its task process has exited only when a select() with no sockets left times out,
# after up to ``min_heartbeat_interval`` (default 5 s), and the LocalExecutor slot stays
# taken meanwhile; 1 s (the least it accepts) means one heartbeat call a second per running
# task. The scheduler sleeps ``scheduler_idle_sleep_time`` (default 1 s) after a loop with
# nothing to do, and each hop of a cascade (run queued -> running -> tasks scheduled ->
# teardown -> next DAG's run) waits for a loop.
LATENCY = {
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
}


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
    def known_file(self) -> Path:
        """The DAG ids an ``up`` has already reviewed (their paused state is then the user's)."""
        return self.home / "onering-dags.json"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def log_file(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Airflow's settings, as environment variables so nothing else is needed."""
        return {
            **LATENCY,
            **(os.environ if base is None else base),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # chDB has one owner at a time: more parallel tasks would only queue on its lock.
            "AIRFLOW__CORE__PARALLELISM": "2",
            # Nothing may run just because Airflow started: `up` unpauses a new DAG only
            # when its schedule has no run due (see `review`).
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
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
        """Migrate the metadata DB, start the components, wait until the DAGs are loaded.

        Then unpause the new DAGs whose schedule has no run due; the state it returns lists
        under ``started`` what runs because Airflow started (nothing, normally).
        """
        since = datetime.now(UTC)
        started = self.running()
        if len(started) == len(COMPONENTS):
            say(f"Airflow is already running at {self.url} (pids {sorted(started.values())}).")
            return self.settle(self.wait_ready(timeout_s=timeout_s, say=say), since, say)
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
            return self.settle(self.wait_ready(timeout_s=timeout_s, say=say), since, say)
        except BridgeError:
            self.down(say=say)
            raise

    def settle(
        self, state: dict[str, Any], since: datetime, say: Callable[[str], None]
    ) -> dict[str, Any]:
        """Unpause what :func:`review` allows; ``state["started"]``: what starting ran."""
        client = self.client()
        dags = client.dags()
        known = set(json.loads(self.known_file.read_text())) if self.known_file.exists() else set()
        now = datetime.now(UTC)
        unpause, kept = review(dags, known, now)
        for dag_id in unpause:
            client.unpause(dag_id)
        if unpause:
            say(f"unpaused {', '.join(unpause)}: no schedule of theirs has a run due")
        for dag_id, why in kept.items():
            say(f"kept {dag_id} paused: {why}")
        seen = sorted(known | {d["dag_id"] for d in dags})
        self.known_file.write_text(json.dumps(seen, indent=1) + "\n")
        state["started"] = started_by_start(dags, client.runs_since(since), now)
        return state

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
        expected = sorted(p.stem for p in self.dags_folder.rglob("*.py"))
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
            health = request_json("GET", f"{self.url}/api/v2/monitor/health")
        except BridgeError:
            return {"ready": False, "summary": "api-server not answering yet"}
        unhealthy = sorted(k for k, v in health.items() if v.get("status") != "healthy")
        if unhealthy:
            return {"ready": False, "summary": f"{', '.join(unhealthy)} not healthy yet"}
        client = self.client()
        dags = client.dags()
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


def _due(dag: dict[str, Any], now: datetime) -> str | None:
    """When the DAG's next scheduled run became due, if it is due by ``now``."""
    after = dag.get("next_dagrun_run_after")
    return after if after and datetime.fromisoformat(after) <= now else None


def review(
    dags: list[dict[str, Any]], known: set[str], now: datetime
) -> tuple[list[str], dict[str, str]]:
    """The new paused DAGs to unpause, and those kept paused with the reason.

    A DAG no ``up`` has reviewed yet (not in ``known``) was created paused. It is unpaused
    unless its schedule has a run due by ``now``: unpausing it would run that at once.
    Asset-triggered DAGs have none (they run on the events of triggered runs), nor has a
    cron DAG whose partitions' runs are all in the past or the future. A DAG an earlier
    ``up`` reviewed keeps its state: whoever paused or unpaused it since meant it.
    """
    unpause, kept = [], {}
    for dag in sorted(dags, key=lambda d: d["dag_id"]):
        if dag["dag_id"] in known or not dag["is_paused"]:
            continue
        due = _due(dag, now)
        if due is None:
            unpause.append(dag["dag_id"])
        else:
            kept[dag["dag_id"]] = (
                f"its schedule ({dag.get('timetable_summary')}) has had a run due since "
                f"{due}; unpausing it (in the Airflow UI) starts that run"
            )
    return unpause, kept


def started_by_start(
    dags: list[dict[str, Any]], runs: list[dict[str, Any]], now: datetime
) -> list[str]:
    """What runs because Airflow started, one line each.

    ``runs``: the runs queued since it started; those Airflow queued by itself count
    (scheduled, asset-triggered), triggered ones do not. Plus each unpaused DAG whose
    schedule has a run due that is not queued yet.
    """
    lines = [
        f"{r['dag_id']} run {r['dag_run_id']} ({r['run_type']}"
        + (f", partition {r['partition_key']}" if r.get("partition_key") else "")
        + ")"
        for r in runs
        if r["run_type"] in SELF_STARTED
    ]
    queued = {r["dag_id"] for r in runs if r["run_type"] in SELF_STARTED}
    for dag in sorted(dags, key=lambda d: d["dag_id"]):
        due = _due(dag, now)
        if due and not dag["is_paused"] and dag["dag_id"] not in queued:
            lines.append(f"{dag['dag_id']}: its scheduled run due since {due}")
    return lines


def exported_plans(dags_folder: Path, *, recursive: bool = True) -> dict[str, dict[str, Any]]:
    """DAG id -> plan, as exported (with environments' ``env_<name>/`` sub-folders)."""
    pattern = "**/*.plan.json" if recursive else "*.plan.json"
    return {
        p.name.removesuffix(".plan.json"): json.loads(p.read_text())["plan"]
        for p in sorted(dags_folder.glob(pattern))
    }


def plan_folder(dags_folder: Path, dag_id: str) -> Path:
    """The folder of ``dag_id``'s plan: production's, or an environment's sub-folder."""
    found = sorted(dags_folder.glob(f"**/{dag_id}.plan.json"))
    return found[0].parent if found else dags_folder


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


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
