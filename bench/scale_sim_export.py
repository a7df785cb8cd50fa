"""Scale simulation, a bridge export of a very large asset graph, in three pieces.

- :func:`render_export`: the Airflow-side half of ``onering airflow export`` on a synthetic
  layered manifest (``bench.bridge_manifests.synthetic_manifest``, the bridge bench's
  graphs): ``airflow_bridge.export.render`` (plans, one per DAG, and DAG files) and
  ``write`` into an empty folder.
- :func:`dagster_export`: the Dagster-side half: definitions of the same graph built as
  OneRing's factory builds a table (``bench.scale_sim_defs.definitions``), Dagster's
  asset graph resolved, and ``airflow_bridge.export.snapshot`` of it into a manifest.
- :func:`parse_folder`: Airflow 3.3 parsing what ``render`` wrote (``DagBag`` in a child
  forked from a process that imported Airflow, as the dag-processor does).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.harness import current_rss_mb


def _clock() -> float:
    return time.perf_counter()


def render_export(n: int, grouping: str, folder: Path) -> dict[str, Any]:
    """Render and write the DAG folder of an ``n``-asset synthetic graph into ``folder``."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.export import render, write
    from bench.bridge_manifests import MANIFEST_FILE, synthetic_manifest

    baseline = current_rss_mb()
    began = _clock()
    manifest = synthetic_manifest(n, grouping)
    built = _clock() - began
    config = RenderConfig(**manifest.render).validate()
    began = _clock()
    files = render(manifest, config)
    rendered = _clock() - began
    began = _clock()
    write(folder, files)
    written = _clock() - began
    plans = [
        json.loads(text)["plan"] for name, text in files.items() if name.endswith(".plan.json")
    ]
    return {
        "assets": n,
        "grouping": grouping,
        "manifest_build_s": built,
        "render_s": rendered,
        "write_s": written,
        "dag_files": len(plans),
        "tasks": sum(len(p["tasks"]) for p in plans),
        "edges": sum(len(t["upstream"]) for p in plans for t in p["tasks"]),
        "bytes": sum(len(text) for text in files.values()),
        "manifest_bytes": len(files[MANIFEST_FILE]),
        "rss_after_imports_mb": baseline,
    }


def dagster_export(n: int, checks: bool) -> dict[str, Any]:
    """Definitions of an ``n``-asset graph, its asset graph, and the bridge's snapshot."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.export import snapshot
    from bench.bridge_manifests import synthetic_manifest
    from bench.scale_sim_defs import definitions

    manifest = synthetic_manifest(n, "group")
    baseline = current_rss_mb()
    began = _clock()
    defs = definitions(manifest, checks=checks)
    built = _clock() - began
    began = _clock()
    graph = defs.resolve_asset_graph()
    resolved = _clock() - began
    config = replace(RenderConfig(), grouping="group").validate()
    began = _clock()
    snap = snapshot(defs, config)
    snapped = _clock() - began
    return {
        "assets": n,
        "checks": len(graph.asset_check_keys),
        "definitions_s": built,
        "asset_graph_s": resolved,
        "snapshot_s": snapped,
        "snapshot_assets": len(snap.assets),
        "snapshot_checks": sum(len(a.checks) for a in snap.assets),
        "rss_after_imports_mb": baseline,
    }


def parse_folder(folder: Path, repeat: int, timeout: float) -> dict[str, Any]:
    """``DagBag`` of ``folder`` in forked children of this process (median of ``repeat``)."""
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401  (the import is not timed)

    from bench.bridge_parse import fork_parse, summarize_parse

    gc.freeze()  # as Airflow's DagFileProcessorManager does before forking its parsers
    runs = []
    for _ in range(repeat):
        run = fork_parse(str(folder), timeout)
        if run is None:
            return {"failed": f"timed out after {timeout:.0f} s"}
        runs.append(run)
    summary = summarize_parse({"runs": runs, "timed_out": False, "import_seconds": 0.0})
    if summary["failed"] or summary["errors"]:
        return {"failed": summary["failed"] or next(iter(summary["errors"].values()))}
    return {
        k: summary[k] for k in ("median_s", "min_s", "max_s", "n", "dags", "tasks", "edges")
    } | {
        "errors": len(summary["errors"]),
        "dagster_imported": summary["dagster_imported"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One export worker: what ``--worker`` names, for ``--assets``."""
    if args.worker == "render":
        return render_export(args.assets, args.grouping, args.folder)
    if args.worker == "dagster":
        return dagster_export(args.assets, not args.no_checks)
    return parse_folder(args.folder, args.repeat, args.timeout)
