"""Shared pieces of the publisher tests: the demo document, and running the publisher.

No OpenMetadata server can run on these machines (it ships only as container images and
release archives): the publisher, run as a subprocess in the openmetadata environment with
``openmetadata-ingestion``'s own client, talks to the loopback server of ``om_server.py``,
which answers and refuses as OpenMetadata 2.0.7 does.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from onering_assets.definitions import build_definitions
from onering_assets.lineage.airflow import airflow_dags
from onering_assets.lineage.document import build_document, dumps
from tests.catalog.om_server import OMServer
from tests.conftest import settings_for

OM_PYTHON = Path(__file__).parents[2] / "envs" / "openmetadata" / ".venv" / "bin" / "python"
SECRET = "onering-dry-run-secret-must-not-leak"
AIRFLOW_EXECUTION = "scheduled__2013-01-01T00:00:00+00:00"


def need_om_env() -> Path:
    """The openmetadata env's python, or skip naming ``make setup``."""
    if not OM_PYTHON.exists():
        pytest.skip("envs/openmetadata/.venv is missing: run `make setup` to create it")
    return OM_PYTHON


def task_pipeline(document: dict[str, Any], task: str) -> str:
    """The Airflow pipeline FQN holding ``task``."""
    return next(
        p["fqn"]
        for p in document["pipelines"]
        if p["service"] == "onering_airflow" and task in {t["name"] for t in p["tasks"]}
    )


def _check(document: dict[str, Any], key: str, index: int = 0) -> str:
    entity = next(e for e in document["entities"] if e["key"] == key)
    return entity["checks"][index]["name"]


def demo_runs(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Three run records: two Dagster runs of one Airflow run (merged into one status) and
    one Dagster-launched run; with table and Bronze check results."""
    silver = task_pipeline(document, "silver__airlines")

    def airflow(task: str) -> dict[str, str]:
        dag = silver.split(".", 1)[1]
        return {"dag_id": dag, "run_id": AIRFLOW_EXECUTION, "task_id": task, "try_number": "1"}

    def result(key: str, name: str, passed: bool, at: str) -> dict[str, Any]:
        return {
            "asset": key,
            "name": name,
            "passed": passed,
            "severity": "ERROR",
            "summary": "all good" if passed else "3 duplicate keys",
            "failing": 0 if passed else 3,
            "partition": None,
            "at": at,
        }

    def run(run_id: str, pipeline: str, execution: str, tasks: list, checks: list, air=None):
        return {
            "run_id": run_id,
            "pipeline": pipeline,
            "execution_id": execution,
            "status": "FAILURE" if any(t["status"] == "FAILURE" for t in tasks) else "SUCCESS",
            "start": tasks[0]["start"],
            "end": tasks[-1]["end"],
            "airflow": air,
            "partitions": [],
            "tasks": tasks,
            "steps": [],
            "materializations": [],
            "checks": checks,
        }

    def task(name: str, status: str, minute: int) -> dict[str, str]:
        return {
            "name": name,
            "status": status,
            "start": f"2026-12-01T03:{minute:02d}:00.000+00:00",
            "end": f"2026-12-01T03:{minute:02d}:30.000+00:00",
        }

    return [
        run(
            "run-airlines",
            silver,
            AIRFLOW_EXECUTION,
            [task("silver__airlines", "SUCCESS", 1)],
            [
                result(
                    "silver/airlines",
                    _check(document, "silver/airlines"),
                    True,
                    "2026-12-01T03:01:10.000+00:00",
                ),
                result(
                    "bronze/airlines",
                    _check(document, "bronze/airlines"),
                    True,
                    "2026-12-01T03:01:05.000+00:00",
                ),
            ],
            airflow("silver__airlines"),
        ),
        run(
            "run-flights",
            silver,
            AIRFLOW_EXECUTION,
            [task("silver__flights", "FAILURE", 2)],
            [
                result(
                    "silver/flights",
                    _check(document, "silver/flights"),
                    False,
                    "2026-12-01T03:02:10.000+00:00",
                )
            ],
            airflow("silver__flights"),
        ),
        run(
            "run-dagster",
            "onering_dagster.onering",
            "run-dagster",
            [task("gold__route_performance", "SUCCESS", 5)],
            [
                result(
                    "gold/route_performance",
                    _check(document, "gold/route_performance"),
                    True,
                    "2026-12-01T03:05:10.000+00:00",
                )
            ],
        ),
    ]


def demo_document(tmp: Path) -> dict[str, Any]:
    """The lineage document of the real definitions and exported DAGs, with ``demo_runs``.

    Built once per session (it names no path, so not ``tmp``'s); each call gets a copy.
    """
    if not _DEMO:
        defs = build_definitions(settings_for(tmp, None))
        document = build_document(defs, dags=airflow_dags(defs))
        document["runs"] = demo_runs(document)
        _DEMO.append(dumps(document))
    return json.loads(_DEMO[0])


_DEMO: list[str] = []


Pairs = set[tuple[tuple[str, ...], str]]


def catalog_edges(document: dict[str, Any]) -> dict[tuple[str, str], Pairs]:
    """The edges OpenMetadata should hold, ``(from FQN, to FQN) -> column pairs``.

    Written here from the document on its own terms (not with the publisher's code): each
    edge between published entities; each pair of edges into and out of a Feast view (not an
    entity there) as one edge, its columns traced through the view; and an edge into the
    model from each entity its features are read from, a pair per feature.
    """
    entities = {e["key"]: e for e in document["entities"]}
    views = {k for k, e in entities.items() if e["entity"] == "featureView"}
    out: defaultdict[tuple[str, str], Pairs] = defaultdict(set)

    def fqn(key: str, column: str | None = None) -> str:
        return entities[key]["fqn"] + (f".{column}" if column else "")

    for edge in document["edges"]:
        if edge["from"] in views or edge["to"] in views:
            continue
        pairs = {
            (tuple(fqn(edge["from"], c) for c in p["from"]), fqn(edge["to"], p["to"]))
            for p in edge["columns"]
        }
        out[(fqn(edge["from"]), fqn(edge["to"]))] |= pairs
    for view in views:
        for into in (e for e in document["edges"] if e["to"] == view):
            back = {p["to"]: p["from"] for p in into["columns"]}
            for onward in (e for e in document["edges"] if e["from"] == view):
                pairs = {
                    (
                        tuple(fqn(into["from"], c) for f in p["from"] for c in back[f]),
                        fqn(onward["to"], p["to"]),
                    )
                    for p in onward["columns"]
                    if all(f in back for f in p["from"])
                }
                out[(fqn(into["from"]), fqn(onward["to"]))] |= pairs
    for model in (e for e in entities.values() if e["entity"] == "mlmodel"):
        for feature in model["mlmodel"]["features"]:
            for source in feature["sources"]:
                pair = (
                    (f"{source['entity']}.{source['column']}",),
                    f"{model['fqn']}.{feature['name']}",
                )
                out[(source["entity"], model["fqn"])].add(pair)
    return dict(out)


@dataclass
class Result:
    """One publisher run: exit code, the JSON summary (last stdout line), stdout, stderr."""

    code: int
    summary: dict[str, Any]
    stdout: str
    stderr: str


def publish(
    document: Path,
    server: OMServer | None,
    *,
    token: str | None = None,
    dry_run: Path | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> Result:
    """Run ``python -m onering_catalog publish`` (or ``args``) in the openmetadata env."""
    python = need_om_env()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ONERING_OPENMETADATA")}
    environ.update({"ONERING_OPENMETADATA_WORKERS": "1", "ONERING_OPENMETADATA_BACKOFF": "0.05"})
    if server is not None:
        environ["ONERING_OPENMETADATA_URL"] = server.url
        environ["ONERING_OPENMETADATA_JWT"] = server.token if token is None else token
    else:
        environ["ONERING_OPENMETADATA_JWT"] = SECRET
    environ.update(env or {})
    command = args or ["publish", "--document", str(document)]
    if dry_run is not None:
        command += ["--dry-run", str(dry_run)]
    done = subprocess.run(
        [str(python), "-m", "onering_catalog", *command],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    return Result(done.returncode, summary, done.stdout, done.stderr)


def writes(server: OMServer) -> list[tuple[str, str]]:
    """The server's recorded writes as (method, path)."""
    return [(r.method, r.path) for r in server.writes()]


def assert_no_secret(secret: str, *texts: str) -> None:
    """No text holds the token (or its signature part)."""
    parts = [secret, *([secret.split(".")[-1]] if secret.count(".") == 2 else [])]
    for text in texts:
        for part in parts:
            assert part not in text
