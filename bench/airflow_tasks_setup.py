"""Airflow tasks bench, the setup: the measured configurations, the exported DAGs folder,
a real ``dagster dev`` for ``dagster_graphql``, the local Airflow, and the fresh-process
import probe."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_bridge.local import PRELOAD  # what `onering airflow up` preloads
from onering_assets.devserver import serving
from onering_assets.errors import OneRingError

if TYPE_CHECKING:
    from airflow_bridge.local import AirflowClient, LocalAirflow

ASSET = "bronze/airlines"
TASK_ID = "bronze__airlines"
MODES = ("in_process", "subprocess", "dagster_graphql")
DAGSTER_START_TIMEOUT_S = 180.0
AIRFLOW_START_TIMEOUT_S = 240.0
WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace {
  locationEntries { name loadStatus locationOrLoadError { __typename
    ... on PythonError { message } } } } } }"""
DAEMONS_QUERY = """{ instance { daemonHealth { allDaemonStatuses {
  daemonType required healthy } } } }"""
IMPORT_PROBE = """
import json, time
started = time.perf_counter()
import onering_assets.runner
runner = time.perf_counter()
import great_expectations
ge = time.perf_counter() - runner
print(json.dumps({"runner_s": runner - started, "great_expectations_s": ge}))
"""
PROBES = 3


class BenchError(Exception):
    """A configuration could not be measured; the message says why."""


@dataclass(frozen=True)
class Setup:
    """One measured configuration: a mode, on an Airflow whose scheduler preloads or not."""

    name: str
    mode: str
    preload: tuple[str, ...]

    @property
    def dag_id(self) -> str:
        return f"bench_{self.mode}"


ON_DEFAULT = (
    Setup("in_process", "in_process", PRELOAD),
    Setup("subprocess", "subprocess", PRELOAD),
    Setup("dagster_graphql", "dagster_graphql", PRELOAD),
)
ON_BARE = (Setup("in_process, no preload", "in_process", ()),)


def export_dags(state: Path, folder: Path, dagster_url: str) -> None:
    """One DAGs folder with a single-task ``bench_<mode>`` DAG per mode."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.export import render, snapshot, write
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import instance_for
    from onering_assets.settings import Settings

    settings = Settings(profile="local", state_dir=state)
    defs = build_definitions(settings)
    files: dict[str, str] = {}
    for mode in MODES:
        config = RenderConfig(
            grouping="selection",
            dags={f"bench_{mode}": f'key:"{ASSET}"'},
            mode=mode,
            python=sys.executable,
            dagster_url=dagster_url,
            retries=0,
        ).validate()
        files |= render(snapshot(defs, config), config)
    write(folder, files)
    instance_for(settings)  # create Dagster's storage once, before any task does


def graphql(url: str, query: str) -> dict[str, Any]:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def dagster_ready(url: str) -> str | None:
    """None when the code location is loaded and the run queue daemon is healthy."""
    try:
        workspace = graphql(url, WORKSPACE_QUERY)["workspaceOrError"]
        daemons = graphql(url, DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    except (OSError, KeyError, TypeError, ValueError) as err:
        return f"webserver not answering yet ({type(err).__name__})"
    entries = workspace.get("locationEntries") or []
    for entry in entries:
        error = entry.get("locationOrLoadError") or {}
        if error.get("__typename") == "PythonError":
            raise BenchError(f"code location {entry['name']} failed to load: {error['message']}")
    if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
        return "code location loading"
    sick = [d["daemonType"] for d in daemons if d["required"] and not d["healthy"]]
    return f"daemons not healthy yet: {', '.join(sick)}" if sick else None


def import_probe() -> dict[str, Any]:
    """Fresh-process import times: what the preload saves, and what the GE check pays.

    ``onering_assets.runner`` is what the scheduler preloads; ``great_expectations`` is
    imported by the ``ge_suite`` check inside the step, in every fresh task process.
    """
    times: list[dict[str, float]] = []
    for _ in range(PROBES):
        proc = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            return {"failed": proc.stderr[-1000:]}
        times.append(json.loads(proc.stdout.splitlines()[-1]))
    return {k: statistics.median(t[k] for t in times) for k in times[0]} | {"n": PROBES}


@contextlib.contextmanager
def dagster_dev(state: Path, port: int, say: Callable[[str], None]) -> Iterator[str]:
    """A real ``dagster dev`` (webserver + daemon) on the state folder's instance."""
    log_path = state / "dagster-dev.log"
    say(f"starting dagster dev on port {port}, log {log_path}")
    try:
        with serving(
            state,
            port,
            log_path,
            env={**os.environ, "ONERING_PROFILE": "local"},
            timeout_s=DAGSTER_START_TIMEOUT_S,
            ready=dagster_ready,
        ) as url:
            say("dagster dev is ready")
            yield url
    except OneRingError as err:
        raise BenchError(str(err)) from err
    say("stopped dagster dev")


@contextlib.contextmanager
def airflow(local: LocalAirflow, say: Callable[[str], None]) -> Iterator[AirflowClient]:
    """``up`` the local Airflow; always ``down`` it."""
    try:
        local.up(timeout_s=AIRFLOW_START_TIMEOUT_S, say=say)
        yield local.client()
    finally:
        local.down(say=say)
