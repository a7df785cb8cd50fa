"""Publishing lineage to OpenMetadata: time and requests, first publish and unchanged re-publish.

Run from the repo root: ``python -m bench.lineage [--assets 1000] [--repeat 3]``.

Against the loopback OpenMetadata server of ``tests/catalog`` (no OpenMetadata server can
run here), for the demo graph and a synthetic graph of ``--assets`` assets (a third each
Bronze containers, Silver and Gold tables, chained, 12 columns and 4 checks each). Per
case: the publisher's requests and writes, its publish time (from its start of work,
imports made on the way included) and the whole process. Beside them, floors measured in
the same run: the openmetadata env's import of OpenMetadata's client (a publish that writes
pays it once; an unchanged one never imports it), and the same GET requests the re-publish
sends, made with plain ``http.client`` on one kept-alive connection.
Target: an unchanged re-publish of 1,000 assets sends no writes and finishes in under 5 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import ROOT

OM_PYTHON = ROOT / "envs" / "openmetadata" / ".venv" / "bin" / "python"
COLUMNS = 12
CHECKS = ("key_unique", "not_empty", "reconciliation", "column_schema")


def demo_document() -> dict[str, Any]:
    """The real definitions' document (graph and exported DAGs, no runs)."""
    from onering_assets.definitions import build_definitions
    from onering_assets.lineage.airflow import airflow_dags
    from onering_assets.lineage.document import build_document
    from onering_assets.settings import Settings

    with tempfile.TemporaryDirectory() as state:
        defs = build_definitions(Settings(profile="local", state_dir=Path(state)))
        return build_document(defs, dags=airflow_dags(defs))


def _entity(layer: str, n: int) -> dict[str, Any]:
    service, database, kind = {
        "bronze": ("onering_lake", "lake", "container"),
        "silver": ("onering_clickhouse", "clickhouse", "table"),
        "gold": ("onering_postgres", "onering", "table"),
    }[layer]
    name = f"t{n:04d}"
    fqn = (
        f"{service}.{layer}.{name}"
        if kind == "container"
        else f"{service}.{database}.{layer}.{name}"
    )
    return {
        "key": f"{layer}/{name}",
        "entity": kind,
        "layer": layer,
        "service": service,
        "database": database,
        "schema": layer,
        "name": name,
        "fqn": fqn,
        "description": f"Synthetic {layer} table {n}.",
        "owners": [],
        "tags": {"layer": layer},
        "kinds": [],
        "group": layer,
        "columns": [
            {"name": f"c{i}", "type": "Nullable(Int64)", "description": f"column {i}"}
            for i in range(COLUMNS)
        ],
        "partitions": None,
        "checks": [{"name": c, "blocking": True, "description": c} for c in CHECKS],
    }


def synthetic_document(assets: int, template: dict[str, Any]) -> dict[str, Any]:
    """``assets`` assets chained Bronze -> Silver -> Gold, one Dagster and three Airflow DAGs."""
    per_layer = assets // 3
    layers = {"bronze": per_layer, "silver": per_layer, "gold": assets - 2 * per_layer}
    entities = [_entity(layer, n) for layer, count in layers.items() for n in range(count)]
    keys = [e["key"] for e in entities]
    edges = []
    for up, down in (("bronze", "silver"), ("silver", "gold")):
        for n in range(min(layers[up], layers[down])):
            to = f"{down}/t{n:04d}"
            edges.append(
                {
                    "from": f"{up}/t{n:04d}",
                    "to": to,
                    "columns": [{"to": f"c{i}", "from": [f"c{i}"]} for i in range(COLUMNS)],
                    "sql": f"SELECT * FROM {up}.t{n:04d}",
                    "pipelines": [
                        {"pipeline": "onering_dagster.onering", "task": to.replace("/", "__")}
                    ],
                }
            )
    dags = [
        {
            "fqn": f"onering_airflow.onering_{layer}",
            "service": "onering_airflow",
            "name": f"onering_{layer}",
            "description": layer,
            "schedule": None,
            "tasks": [
                {"name": k.replace("/", "__"), "assets": [k], "downstream": []}
                for k in keys
                if k.startswith(layer)
            ],
        }
        for layer in layers
    ]
    dagster = {
        "fqn": "onering_dagster.onering",
        "service": "onering_dagster",
        "name": "onering",
        "description": "synthetic",
        "tasks": [{"name": k.replace("/", "__"), "assets": [k], "downstream": []} for k in keys],
    }
    return {
        **{k: template[k] for k in ("version", "code_location", "services")},
        "entities": entities,
        "pipelines": [dagster, *dags],
        "edges": edges,
        "runs": [],
    }


def publish(document: Path, url: str, token: str) -> tuple[dict[str, Any], float]:
    """One publisher process: its JSON summary and wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONERING_OPENMETADATA")}
    env.update({"ONERING_OPENMETADATA_URL": url, "ONERING_OPENMETADATA_JWT": token})
    started = time.perf_counter()
    done = subprocess.run(
        [str(OM_PYTHON), "-m", "onering_catalog", "publish", "--document", str(document)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"publisher exit {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def import_floor() -> float:
    """Seconds for the openmetadata env to import OpenMetadata's client and models."""
    code = "from metadata.ingestion.ometa.ometa_api import OpenMetadata"
    started = time.perf_counter()
    subprocess.run([str(OM_PYTHON), "-c", code], check=True, timeout=300)
    return time.perf_counter() - started


def get_floor(server: Any, paths: list[str]) -> float:
    """The same GETs as the re-publish, by plain http.client on one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"Bearer {server.token}"}
    started = time.perf_counter()
    for path in paths:
        connection.request("GET", "/api" + path, headers=headers)
        connection.getresponse().read()
    connection.close()
    return time.perf_counter() - started


def measure(name: str, document: dict[str, Any], repeat: int) -> list[dict[str, Any]]:
    """First publish, then ``repeat`` unchanged re-publishes (median), on a fresh server."""
    from tests.catalog.om_server import OMServer

    server = OMServer(users=("onering-owner",), teams=("data-platform",)).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "document.json"
            path.write_text(json.dumps(document))
            rows = []
            first, wall = publish(path, server.url, server.token)
            rows.append({"graph": name, "publish": "first", "summary": first, "wall": wall})
            again = []
            for _ in range(repeat):
                server.reset_log()
                again.append(publish(path, server.url, server.token))
            reads = [
                r.path + ("?" + "&".join(f"{k}={v}" for k, v in r.query.items()) if r.query else "")
                for r in server.requests
                if r.method == "GET"
            ]
            summary, wall = sorted(again, key=lambda a: a[1])[len(again) // 2]
            rows.append(
                {
                    "graph": name,
                    "publish": "unchanged",
                    "summary": summary,
                    "wall": wall,
                    "floor_get": statistics.median(get_floor(server, reads) for _ in range(3)),
                }
            )
            return rows
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not OM_PYTHON.exists():
        sys.exit(f"{OM_PYTHON} is missing: run `make setup`.")
    demo = json.loads(json.dumps(demo_document()))
    imports = statistics.median(import_floor() for _ in range(3))
    rows = measure(f"demo ({len(demo['entities'])} assets)", demo, args.repeat)
    rows += measure(
        f"synthetic ({args.assets})", synthetic_document(args.assets, demo), args.repeat
    )
    print(f"openmetadata env import floor (OpenMetadata client + models): {imports:.2f} s")
    header = (
        f"{'graph':<20} {'publish':<10} {'requests':>8} {'writes':>7} {'publish s':>9} "
        f"{'process s':>9} {'GET floor s':>11} {'publish/floor':>13}"
    )
    print(header)
    for row in rows:
        s = row["summary"]
        floor = row.get("floor_get")
        ratio = f"{s['seconds'] / floor:.1f}x" if floor else ""
        print(
            f"{row['graph']:<20} {row['publish']:<10} {s['requests']:>8} {s['writes']:>7} "
            f"{s['seconds']:>9.2f} {row['wall']:>9.2f} {f'{floor:.2f}' if floor else '':>11} "
            f"{ratio:>13}"
        )
    target = next(
        r for r in rows if r["graph"].startswith("synthetic") and r["publish"] == "unchanged"
    )
    ok = target["summary"]["writes"] == 0 and target["wall"] < 5
    print(
        f"target: unchanged re-publish of {args.assets} assets sends no writes and finishes in "
        f"under 5 s: writes {target['summary']['writes']}, {target['wall']:.2f} s process "
        f"({target['summary']['seconds']:.2f} s publishing) -> {'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
