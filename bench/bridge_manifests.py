"""Airflow bridge bench, the DAG folders it parses: synthetic layered manifests exported by
``airflow_bridge.export``, and Airflow's floor (bare ``EmptyOperator`` DAGs built from the
same manifest JSON)."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import ROOT

if TYPE_CHECKING:
    from airflow_bridge.manifest import AssetNode, Manifest

REAL_DAGS = ROOT / "platform" / "orchestration" / "airflow" / "dags"
MANIFEST_FILE = "onering_manifest.json"
SEED = 20130101
GROUPS = 10

FLOOR_TEMPLATE = '''"""bench/bridge.py floor: a bare EmptyOperator DAG from the manifest JSON."""

import json
from datetime import datetime, timezone
from pathlib import Path

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

GROUP = {group!r}
WIRE = {wire!r}

with Path(__file__).with_name("{manifest}").open() as f:
    manifest = json.load(f)
assets = [a for a in manifest["assets"] if GROUP is None or a["group"] == GROUP]
dag = DAG(
    dag_id="{dag_id}",
    schedule=None,
    start_date=datetime(2013, 1, 1, tzinfo=timezone.utc),
    catchup=False,
)
tasks = {{a["key"]: EmptyOperator(task_id=a["key"].replace("/", "__"), dag=dag) for a in assets}}
if WIRE:
    for a in assets:
        for dep in sorted(a["deps"]):
            if dep in tasks:
                tasks[a["key"]].set_upstream(tasks[dep])
'''


def synthetic_manifest(n: int, grouping: str, seed: int = SEED) -> Manifest:
    """A layered asset graph of ``n`` assets: width ~sqrt(n), 1-3 deps on the layer above."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.manifest import AssetNode, CheckNode, Manifest

    rng = random.Random(seed)
    width = max(1, round(math.sqrt(n)))
    layers = math.ceil(n / width)
    assets: list[AssetNode] = []
    previous: list[str] = []
    for layer in range(layers):
        group = f"g{layer * GROUPS // layers:02d}"
        current = []
        for i in range(layer * width, min(n, (layer + 1) * width)):
            key = f"{group}/t{i:05d}"
            k = min(len(previous), rng.randint(1, 3))
            partitioned = rng.random() < 0.5
            assets.append(
                AssetNode(
                    key=key,
                    group=group,
                    deps=tuple(sorted(rng.sample(previous, k))),
                    partitions={"start": "2013-01", "end": "2013-12", "fmt": "%Y-%m"}
                    if partitioned
                    else None,
                    checks=(
                        CheckNode("not_empty", True),
                        CheckNode("required_columns", True),
                        CheckNode("ge_suite", rng.random() < 0.5),
                    ),
                    owners=("team:data-platform",),
                    tags={"layer": group, "store": "lake"},
                    uri=f"onering://{key}",
                    openmetadata={"database": "lake", "schema": group, "table": f"t{i:05d}"},
                    description=f"Synthetic asset {i} of layer {layer}",
                )
            )
            current.append(key)
        previous = current
    config = replace(RenderConfig(), grouping=grouping).validate()
    return Manifest("onering", tuple(assets), asdict(config))


def write_ours(folder: Path, manifest: Manifest) -> dict[str, Any]:
    """The DAG files ``onering airflow export`` writes for this manifest, timed."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.export import render, write

    started = time.perf_counter()
    config = RenderConfig(**manifest.render).validate()
    files = render(manifest, config)
    write(folder, files)
    seconds = time.perf_counter() - started
    return {
        "files": len(files) - 1,
        "manifest_bytes": len(files[MANIFEST_FILE]),
        "export": {"median_s": seconds, "n": 1, "tasks": len(manifest.assets)},
    }


def write_floor(folder: Path, manifest_text: str, grouping: str, wire: bool) -> None:
    """Bare EmptyOperator DAG file(s) reading the same manifest JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).write_text(manifest_text)
    raw = json.loads(manifest_text)
    prefix = raw["render"].get("dag_prefix", "onering")
    groups = sorted({a["group"] for a in raw["assets"]}) if grouping == "group" else [None]
    for group in groups:
        dag_id = f"floor_{prefix}" + (f"_{group}" if group else "")
        text = FLOOR_TEMPLATE.format(group=group, wire=wire, manifest=MANIFEST_FILE, dag_id=dag_id)
        (folder / f"{dag_id}.py").write_text(text)
