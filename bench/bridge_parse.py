"""Airflow bridge bench, the parse worker: one process imports Airflow once, freezes the
GC and forks one child per ``DagBag`` parse (as Airflow's DagFileProcessorManager does);
the child times only the ``DagBag`` construction. Also the summary of a case's runs."""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import sys
import time
from typing import Any

from bench.harness import median_or_none


def bag_summary(folder: str) -> dict[str, Any]:
    """Runs in the forked child: time the DagBag, then describe what it holds."""
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=folder, safe_mode=True)
    seconds = time.perf_counter() - started
    dags = list(bag.dags.values())
    return {
        "seconds": seconds,
        "dags": len(dags),
        "tasks": sum(len(d.tasks) for d in dags),
        "edges": sum(len(t.upstream_task_ids) for d in dags for t in d.tasks),
        "errors": {str(k): str(v)[-600:] for k, v in bag.import_errors.items()},
        "dagster_imported": any(m.split(".")[0] == "dagster" for m in sys.modules),
    }


def read_child(fd: int, pid: int, timeout: float) -> dict[str, Any] | None:
    """The child's JSON, or None if it ran past ``timeout`` (then it is killed)."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return {"failed": f"child exited with status {status} without a result"}
    return json.loads(b"".join(chunks))


def fork_parse(folder: str, timeout: float) -> dict[str, Any] | None:
    """One DagBag parse in a forked child of this (Airflow-imported) process."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        code = 0
        try:
            payload = json.dumps(bag_summary(folder)).encode()
        except BaseException as err:  # report anything, never fall back into the parent
            payload, code = json.dumps({"failed": repr(err)}).encode(), 1
        with os.fdopen(write_fd, "wb") as out:
            out.write(payload)
        os._exit(code)
    os.close(write_fd)
    try:
        return read_child(read_fd, pid, timeout)
    finally:
        os.close(read_fd)


def worker_parse(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401  (the import is not timed)

    imported = time.perf_counter()
    if not args.no_gc_freeze:
        gc.freeze()  # as Airflow's DagFileProcessorManager does before forking its parsers
    runs: list[dict[str, Any]] = []
    timed_out = False
    case_started = time.perf_counter()
    for _ in range(args.repeat):
        run = fork_parse(str(args.folder), args.timeout)
        if run is None:
            timed_out = True
            break
        runs.append(run)
        if "failed" in run or time.perf_counter() - case_started > args.budget:
            break
    return {"import_seconds": imported - started, "runs": runs, "timed_out": timed_out}


def describe(result: dict[str, Any]) -> str:
    if "failed" in result:
        return f"[red]{result['failed']}[/red]"
    runs = [r for r in result["runs"] if "seconds" in r]
    text = ", ".join(f"{r['seconds'] * 1000:.0f}" for r in runs) + " ms"
    return text + (" + [red]timeout[/red]" if result["timed_out"] else "")


def summarize_parse(result: dict[str, Any]) -> dict[str, Any]:
    """Median and spread of the runs; counts and errors of the first run."""
    if "failed" in result:
        return {"failed": result["failed"]}
    runs = [r for r in result["runs"] if "seconds" in r]
    failures = [r["failed"] for r in result["runs"] if "failed" in r]
    times = [r["seconds"] for r in runs]
    first = runs[0] if runs else {}
    return {
        "median_s": median_or_none(times),
        "min_s": min(times, default=None),
        "max_s": max(times, default=None),
        "n": len(times),
        "timed_out": result["timed_out"],
        "failed": failures[0] if failures else None,
        "dags": first.get("dags"),
        "tasks": first.get("tasks"),
        "edges": first.get("edges"),
        "errors": first.get("errors", {}),
        "dagster_imported": first.get("dagster_imported"),
        "airflow_import_s": result["import_seconds"],
        "runs_s": times,
    }
