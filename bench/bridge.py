"""Airflow bridge benchmark: DAG parse time vs Airflow's own floor, and in_process overhead.

    python bench/bridge.py [--sizes 250,1000,10000] [--repeat 5] [--timeout 60] [--keep]

What it measures, each piece in its own fresh process:

1. Airflow parse time of exported DAG folders: ``DagBag(dag_folder=..., safe_mode=True)``
   from ``airflow.dag_processing.dagbag`` with a throwaway ``AIRFLOW_HOME`` and
   ``AIRFLOW__CORE__LOAD_EXAMPLES=False``. One worker process per case imports Airflow once,
   calls ``gc.freeze()`` and forks one child per run (as Airflow's DagFileProcessorManager
   does); the child times only the ``DagBag`` construction. Airflow's own per-file
   ``core.dagbag_import_timeout`` (30 s) stays in force: a file that hits it is an import
   error, reported as such. Median of ``--repeat`` runs, for (a) the project's exported
   folder ``platform/orchestration/airflow/dags`` and (b) synthetic manifests (layers of
   width ~sqrt(n), each asset depending on 1-3 assets of the previous layer, seeded), in
   ``grouping="one"`` (a single DAG of n tasks) and ``grouping="group"`` (10 groups of
   consecutive layers, one DAG file each), written by ``airflow_bridge.export``.
2. Airflow's floor on the same manifest JSON: DAG files that ``json.load`` the manifest and
   build ``EmptyOperator`` tasks, wired with Airflow's ``set_upstream`` (one DAG, and one DAG
   per group) and without dependencies.
3. ours / floor and the per-task parse cost at every size, and an in-process breakdown of
   where the time goes (bridge import, manifest load, plan and its topological sort,
   operators, wiring through Airflow's ``set_upstream`` vs the relation sets directly, and
   the ``hash(dag)`` that ``set_upstream`` pays twice per edge).
4. The ``in_process`` per-task overhead: ``onering_assets.runner.run_keys(["silver/airlines"])``
   in a warm process against a state folder where bronze/airlines + silver/airlines were
   materialized once; median of 5 calls minus the Dagster steps' own time (event log
   STEP_START -> STEP_SUCCESS). Also one cold call in a fresh process, which is what an
   Airflow 3 task process pays.

A case stops repeating once it has used ``--budget`` seconds (at least one run), and a run
is killed after ``--timeout`` seconds and reported as such. The export side (``render`` +
``write``) is timed too.
The table is printed and everything is written to ``bench/results/bridge.json``; worker
logs go to ``bench/results/logs/``. The whole bench takes about 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_bridge.manifest import AssetNode, Manifest

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
REAL_DAGS = ROOT / "platform" / "orchestration" / "airflow" / "dags"
MANIFEST_FILE = "onering_manifest.json"
SEED = 20130101
GROUPS = 10
TARGET_250_S = 0.050
TARGET_RATIO = 1.5
TARGET_IN_PROCESS_S = 1.0
IN_PROCESS_CALLS = 5

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


# --------------------------------------------------------------------------- manifests


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


# --------------------------------------------------------------------------- wiring


def direct_set_upstream(task: Any, upstream: Any) -> None:
    """What ``_set_relatives`` ends with, minus its same-DAG check (true by construction),
    which hashes the DAG (all task ids and schedule Assets) twice per edge."""
    task.upstream_task_ids.add(upstream.node_id)
    upstream.downstream_task_ids.add(task.node_id)


# --------------------------------------------------------------------------- parse worker


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


# --------------------------------------------------------------------------- phases worker


@contextlib.contextmanager
def timed(into: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        into[name] = into.get(name, 0.0) + time.perf_counter() - started


def timing_wrapper(fn: Callable[..., Any], into: dict[str, float], name: str) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timed(into, name):
            return fn(*args, **kwargs)

    return wrapper


def plan_phases(manifest_path: Path, t: dict[str, float]) -> Any:
    """Load the manifest and plan its DAGs, as export does; the plans and the config."""
    import airflow_bridge.graph as graph
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.manifest import load

    with timed(t, "load manifest (at export)"):
        manifest = load(manifest_path)
        config = RenderConfig(**manifest.render).validate()
    sort = graph._kahn
    setattr(graph, "_kahn", timing_wrapper(sort, t, "  of it graph._kahn"))  # noqa: B010
    try:
        with timed(t, "plan_dags (at export)"):
            plans = graph.plan_dags(manifest, config)
    finally:
        setattr(graph, "_kahn", sort)  # noqa: B010
    return plans, config


def floor_dag(dag_id: str, keys: list[str]) -> Any:
    from datetime import UTC, datetime

    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    dag = DAG(dag_id=dag_id, schedule=None, start_date=datetime(2013, 1, 1, tzinfo=UTC))
    for key in keys:
        EmptyOperator(task_id=key.replace("/", "__"), dag=dag)
    return dag


def wire(dag: Any, plan: Any, direct: bool = False) -> None:
    """Wire the plan's edges: Airflow's set_upstream, or the relation sets directly."""
    tasks = dag.task_dict
    for task in plan.tasks:
        for upstream in task.upstream:
            if direct:
                direct_set_upstream(tasks[task.task_id], tasks[upstream])
            else:
                tasks[task.task_id].set_upstream(tasks[upstream])


def hash_seconds(dag: Any) -> float:
    """One ``hash(dag)``: task ids + schedule (each schedule Asset hashes via attrs + JSON)."""
    probes = max(1, min(100, 100_000 // max(1, len(dag.task_dict))))
    started = time.perf_counter()
    for _ in range(probes):
        hash(dag)
    return (time.perf_counter() - started) / probes


def warm_up(build_dag: Callable[..., Any], plan: Any, config: Any) -> None:
    """Pay first-use costs (lazy imports, caches) once for both sides, untimed by the phases."""
    one = replace(plan, dag_id="warm_up", tasks=(replace(plan.tasks[0], upstream=()),))
    build_dag(asdict(one), asdict(config))
    floor_dag("warm_up_floor", ["warm/up"])


def worker_phases(args: argparse.Namespace) -> dict[str, Any]:
    """In-process breakdown for one exported folder, ours vs the floor (no DagBag)."""
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401  (as in the parse worker)

    gc.freeze()
    t: dict[str, float] = {}
    with timed(t, "import airflow_bridge.dag (after airflow)"):
        from airflow_bridge.dag import build_dag
    plans, config = plan_phases(args.folder / MANIFEST_FILE, t)
    bare = [replace(p, tasks=tuple(replace(x, upstream=()) for x in p.tasks)) for p in plans]
    with timed(t, "first-use init (a 1-task DAG each side)"):
        warm_up(build_dag, plans[0], config)
    with timed(t, "DAG + DagsterAssetsOperators"):
        dags = [build_dag(asdict(p), asdict(config)) for p in bare]
    with timed(t, "floor: DAG + EmptyOperators"):
        floors = [floor_dag(p.dag_id, [k for x in p.tasks for k in x.asset_keys]) for p in plans]
    hashes = [hash_seconds(d) for d in dags]
    edges = [sum(len(x.upstream) for x in p.tasks) for p in plans]
    # set_upstream -> _set_relatives hashes the DAG twice per edge: {task.dag for ...}
    predicted = sum(2 * e * h for e, h in zip(edges, hashes, strict=True))
    t["wiring via set_upstream: predicted 2 x edges x hash(dag)"] = predicted
    if predicted <= args.wire_budget:
        with timed(t, "wiring via set_upstream: measured"):
            for dag, plan in zip(dags, plans, strict=True):
                wire(dag, plan)
    with timed(t, "wiring via the relation sets directly"):
        for dag, plan in zip(floors, plans, strict=True):
            wire(dag, plan, direct=True)
    return {
        "dags": len(plans),
        "tasks": sum(len(p.tasks) for p in plans),
        "edges": sum(edges),
        "schedule_assets": max(len(p.schedule_assets) for p in plans),
        "hash_dag_s": statistics.median(hashes),
        "seconds": t,
    }


# --------------------------------------------------------------------------- in_process worker


def call_run_keys(run_keys: Any, keys: list[str]) -> Any:
    """``run_keys`` with checks, whichever of its signatures (``checks=``/``what=``) is here."""
    import inspect

    params = inspect.signature(run_keys).parameters
    extra = {"checks": True} if "checks" in params else {"what": "assets"}
    return run_keys(keys, None, None, tags={}, **extra)


def timed_run(runner: Any, instance: Any, keys: list[str]) -> dict[str, Any]:
    """One ``run_keys`` call: wall time, its parts, and the steps' own time."""
    from bench.pipeline import step_seconds

    t: dict[str, float] = {}
    defs_module: Any = sys.modules["onering_assets.definitions"]
    build, execute = defs_module.build_definitions, runner.execute
    defs_module.build_definitions = timing_wrapper(build, t, "build_definitions")
    runner.execute = timing_wrapper(execute, t, "execute (subset + run)")
    try:
        started = time.perf_counter()
        summary = call_run_keys(runner.run_keys, keys)
        wall = time.perf_counter() - started
    finally:
        defs_module.build_definitions, runner.execute = build, execute
    steps = step_seconds(instance, summary.run_id)
    return {
        "wall_s": wall,
        "success": summary.success,
        "failures": summary.failures,
        "run_s": summary.seconds,
        "steps": steps,
        "steps_s": sum(steps.values()),
        "overhead_s": wall - sum(steps.values()),
        "events": len(instance.all_logs(summary.run_id)),
        **{f"{k}_s": v for k, v in t.items()},
    }


def worker_in_process(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    import onering_assets.definitions  # noqa: F401
    from onering_assets import runner
    from onering_assets.settings import Settings

    imported = time.perf_counter() - started
    instance = runner.instance_for(Settings.from_env())
    if args.cold:
        first = timed_run(runner, instance, ["silver/airlines"])
        return {"import_s": imported, "first_call": first, "process_s": imported + first["wall_s"]}
    setup = timed_run(runner, instance, ["bronze/airlines", "silver/airlines"])
    calls = [timed_run(runner, instance, ["silver/airlines"]) for _ in range(IN_PROCESS_CALLS)]
    return {"import_s": imported, "setup": setup, "calls": calls}


# --------------------------------------------------------------------------- spawning


def run_worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["parse", "phases", "in_process"], required=True)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--no-gc-freeze", action="store_true")
    parser.add_argument("--wire-budget", type=float, default=12.0)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    work = {"parse": worker_parse, "phases": worker_phases, "in_process": worker_in_process}
    args.out.write_text(json.dumps(work[args.worker](args), default=str))


def spawn(
    name: str, args: list[str], env: dict[str, str], timeout: float, scratch: Path
) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; its output goes to bench/results/logs/."""
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = scratch / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--out", str(out)]
    started = time.perf_counter()
    with (logs / f"bridge_{name}.log").open("w") as log:
        try:
            proc = subprocess.run(
                cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            )
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if code != 0 or not out.exists():
        return {"failed": f"worker {name} exit {code}; see {logs / f'bridge_{name}.log'}"}
    return {**json.loads(out.read_text()), "process_s": time.perf_counter() - started}


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path, console: Any) -> None:
        self.args = args
        self.scratch = scratch
        self.console = console
        home = scratch / "airflow_home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def parse(self, name: str, folder: Path) -> dict[str, Any]:
        a = self.args
        argv = ["--worker", "parse", "--folder", str(folder), "--repeat", str(a.repeat)]
        argv += ["--timeout", str(a.timeout), "--budget", str(a.budget)]
        if a.no_gc_freeze:
            argv.append("--no-gc-freeze")
        worst = a.repeat * a.timeout + 120
        result = spawn(f"parse_{name}", argv, self.env, worst, self.scratch)
        self.console.log(f"{name}: {describe(result)}")
        return summarize_parse(result)

    def phases(self, name: str, folder: Path) -> dict[str, Any]:
        argv = ["--worker", "phases", "--folder", str(folder), "--wire-budget", "12"]
        result = spawn(f"phases_{name}", argv, self.env, self.args.timeout * 2, self.scratch)
        self.console.log(f"{name}: phases done in {result.get('process_s', 0):.1f} s")
        return result

    def real(self) -> dict[str, Any]:
        text = (REAL_DAGS / MANIFEST_FILE).read_text()
        grouping = json.loads(text)["render"].get("grouping", "group")
        floors = {}
        for label, group, wired in (("floor", grouping, True), ("floor_nodeps", "one", False)):
            folder = self.scratch / f"real_{label}"
            write_floor(folder, text, group, wired)
            floors[label] = self.parse(f"real_{label}", folder)
        return {
            "size": "real",
            "grouping": grouping,
            "ours": self.parse("real_ours", REAL_DAGS),
            **floors,
        }

    def synthetic(self, n: int) -> dict[str, Any]:
        result: dict[str, Any] = {"size": n}
        for grouping in ("one", "group"):
            folder = self.scratch / f"n{n}_ours_{grouping}"
            files = write_ours(folder, synthetic_manifest(n, grouping))
            text = (folder / MANIFEST_FILE).read_text()
            floor = self.scratch / f"n{n}_floor_{grouping}"
            write_floor(floor, text, grouping, wire=True)
            result[grouping] = {
                **files,
                "ours": self.parse(f"n{n}_ours_{grouping}", folder),
                "floor": self.parse(f"n{n}_floor_{grouping}", floor),
                "phases": self.phases(f"n{n}_{grouping}", folder),
            }
            if grouping == "one":
                nodeps = self.scratch / f"n{n}_floor_nodeps"
                write_floor(nodeps, text, "one", wire=False)
                result["floor_nodeps"] = self.parse(f"n{n}_floor_nodeps", nodeps)
        return result

    def in_process(self) -> dict[str, Any]:
        state = self.scratch / "onering_state"
        env = {**self.env, "ONERING_STATE_DIR": str(state), "ONERING_PROFILE": "local"}
        env.pop("ONERING_SOURCE_DIR", None)
        warm = spawn("in_process_warm", ["--worker", "in_process"], env, 900, self.scratch)
        self.console.log(f"in_process warm: done in {warm.get('process_s', 0):.1f} s")
        cold = spawn(
            "in_process_cold", ["--worker", "in_process", "--cold"], env, 600, self.scratch
        )
        self.console.log(f"in_process cold: done in {cold.get('process_s', 0):.1f} s")
        return {"warm": summarize_in_process(warm), "cold": cold}


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
        "median_s": statistics.median(times) if times else None,
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


def summarize_in_process(result: dict[str, Any]) -> dict[str, Any]:
    if "failed" in result:
        return result
    calls = result["calls"]
    keys = [k for k in calls[0] if k.endswith("_s")]
    median = {k: statistics.median(c[k] for c in calls) for k in keys}
    return {**result, "median": median, "success": all(c["success"] for c in calls)}


# --------------------------------------------------------------------------- analysis


def parsed(p: dict[str, Any]) -> bool:
    """A clean parse: timed, not killed, no import errors."""
    return p.get("median_s") is not None and not p.get("timed_out") and not p.get("errors")


def ratio(ours: dict[str, Any], floor: dict[str, Any]) -> float | None:
    if not parsed(ours) or not parsed(floor):
        return None
    return ours["median_s"] / floor["median_s"]


def analyze(results: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Ratios, per-task costs and the verdicts."""
    checks: list[tuple[bool, str]] = []
    for r in results:
        if r["size"] == "real":
            value = ratio(r["ours"], r["floor"])
            ok = value is not None and value <= TARGET_RATIO
            checks.append(
                (ok, f"real exported folder: ours/floor {fmt_ratio(value)} <= {TARGET_RATIO:g}x")
            )
            continue
        for grouping in ("one", "group"):
            g = r[grouping]
            g["ratio"] = ratio(g["ours"], g["floor"])
            label = f"{r['size']:,} assets, grouping={grouping}"
            ours = g["ours"]
            shown = fmt_parse(ours, timeout)
            if g["ratio"] is None:
                checks.append((False, f"{label}: ours {shown}"))
            else:
                checks.append(
                    (
                        g["ratio"] <= TARGET_RATIO,
                        f"{label}: ours/floor {g['ratio']:.2f}x <= {TARGET_RATIO:g}x",
                    )
                )
            if r["size"] == 250:
                ok = ours.get("median_s") is not None and ours["median_s"] <= TARGET_250_S
                checks.append((ok, f"{label}: parse {shown} <= {TARGET_250_S * 1000:.0f} ms"))
    return {"checks": checks}


# --------------------------------------------------------------------------- report


def fmt_parse(p: dict[str, Any], timeout: float) -> str:
    if p.get("failed") and p.get("median_s") is None:
        return "failed"
    if p.get("timed_out") and not p.get("n"):
        return f"> {timeout:.0f} s (killed)"
    median = p["median_s"]
    if p.get("errors"):
        timeouts = [e for e in p["errors"].values() if "DagBag import timeout" in e]
        why = "Airflow import timeout" if timeouts else "import error"
        return f"{why} at {median:,.1f} s"
    text = f"{median * 1000:,.0f} ms" if median < 10 else f"{median:,.1f} s"
    if p["n"] > 1:
        text += f" ({p['min_s'] * 1000:,.0f}-{p['max_s'] * 1000:,.0f}, n={p['n']})"
    else:
        text += " (n=1)"
    return text + (" +timeout" if p.get("timed_out") else "")


def per_task(p: dict[str, Any]) -> str:
    if p.get("median_s") is None or not p.get("tasks"):
        return "-"
    return f"{p['median_s'] / p['tasks'] * 1e6:,.0f} µs"


def shape(p: dict[str, Any]) -> str:
    if p.get("dags") is None:
        return "-"
    errors = f", [red]{len(p['errors'])} errors[/red]" if p.get("errors") else ""
    return f"{p['dags']} / {p['tasks']:,} / {p['edges']:,}{errors}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def parse_table(results: list[dict[str, Any]], timeout: float) -> Any:
    from rich.table import Table

    table = Table(title="Airflow parse: DagBag(dag_folder) median, a fresh forked process per run")
    for name in ("assets", "case", "DAGs / tasks / edges", "parse", "per task", "vs floor"):
        table.add_column(name, justify="left" if name in ("assets", "case") else "right")
    for i, r in enumerate(results):
        rows = real_rows(r) if r["size"] == "real" else synthetic_rows(r)
        for label, p, vs in rows:
            size = str(r["size"]) if r["size"] == "real" else f"{r['size']:,}"
            table.add_row(size, label, shape(p), fmt_parse(p, timeout), per_task(p), vs)
        if i < len(results) - 1:
            table.add_section()
    return table


def real_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    return [
        (
            f"ours (exported, grouping={r['grouping']})",
            r["ours"],
            fmt_ratio(ratio(r["ours"], r["floor"])),
        ),
        (f"floor EmptyOperator, grouping={r['grouping']}", r["floor"], "1.00x"),
        ("floor EmptyOperator, one DAG, no deps", r["floor_nodeps"], ""),
    ]


def synthetic_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    target = f" (<= {TARGET_RATIO:g}x)"
    rows = []
    for grouping in ("one", "group"):
        g = r[grouping]
        rows += [
            (f"ours, grouping={grouping}", g["ours"], fmt_ratio(g["ratio"]) + target),
            (f"floor EmptyOperator+set_upstream, {grouping}", g["floor"], "1.00x"),
        ]
    rows.append(("floor EmptyOperator, one DAG, no deps", r["floor_nodeps"], ""))
    for grouping in ("one", "group"):
        export = r[grouping]["export"]
        rows.append((f"export side: render + write, {grouping}", export, ""))
    return rows


def phases_table(results: list[dict[str, Any]]) -> Any:
    """Where the time goes, in process (no DagBag), per size and grouping."""
    from rich.table import Table

    cols = [
        (r, grouping)
        for r in results
        if r["size"] != "real"
        for grouping in ("one", "group")
        if "seconds" in r[grouping]["phases"]
    ]
    table = Table(title="Where the time goes: in process, first pass, no DagBag (ours vs floor)")
    table.add_column("phase")
    for r, grouping in cols:
        table.add_column(f"{r['size']:,} {grouping}", justify="right")
    names: list[str] = []
    for r, grouping in cols:
        names += [k for k in r[grouping]["phases"]["seconds"] if k not in names]
    for name in names:
        cells = []
        for r, grouping in cols:
            value = r[grouping]["phases"]["seconds"].get(name)
            cells.append("-" if value is None else fmt_seconds(value))
        table.add_row(name, *cells)
    extra = (
        ("DAG files (each reads only its own plan)", lambda p: str(p["dags"])),
        ("tasks / edges", lambda p: f"{p['tasks']:,} / {p['edges']:,}"),
        ("schedule Assets per DAG (max)", lambda p: str(p["schedule_assets"])),
        ("hash(dag) once (median DAG)", lambda p: f"{p['hash_dag_s'] * 1e6:,.0f} µs"),
    )
    for label, cell in extra:
        table.add_row(label, *(cell(r[grouping]["phases"]) for r, grouping in cols))
    return table


def fmt_seconds(value: float) -> str:
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"


def in_process_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="in_process mode: run_keys(['silver/airlines']) per task")
    table.add_column("what")
    table.add_column("seconds", justify="right")
    warm, cold = result["warm"], result["cold"]
    if "failed" in warm:
        table.add_row("warm process", f"[red]{warm['failed']}[/red]")
        return table
    m = warm["median"]
    rows = [
        (f"warm: run_keys wall (median of {len(warm['calls'])})", m["wall_s"]),
        ("  of it build_definitions", m.get("build_definitions_s")),
        (
            "  of it runner.execute (job subset + execute_in_process)",
            m.get("execute (subset + run)_s"),
        ),
        ("    of it execute_in_process", m["run_s"]),
        ("    of it the Dagster steps' own work", m["steps_s"]),
        ("warm: overhead = wall - steps (target <= 1 s)", m["overhead_s"]),
        ("setup call (bronze+silver airlines, 1st in process)", warm["setup"]["wall_s"]),
    ]
    if "failed" not in cold:
        first = cold["first_call"]
        rows += [
            ("cold process: import onering_assets + dagster", cold["import_s"]),
            ("cold process: 1st run_keys wall", first["wall_s"]),
            ("  of it build_definitions", first.get("build_definitions_s")),
            ("  of it the Dagster steps' own work", first["steps_s"]),
            ("cold process: import + 1st call - steps", cold["import_s"] + first["overhead_s"]),
        ]
    for label, value in rows:
        table.add_row(label, "-" if value is None else f"{value:.3f}")
    table.add_row("Dagster events written per silver run", str(warm["calls"][0]["events"]))
    return table


def verdicts(analysis: dict[str, Any], in_process: dict[str, Any]) -> list[str]:
    def mark(ok: bool) -> str:
        return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"

    lines = [f"{mark(ok)} {text}" for ok, text in analysis["checks"]]
    warm = in_process["warm"]
    if "failed" in warm:
        lines.append(f"{mark(False)} in_process overhead: {warm['failed']}")
    else:
        overhead = warm["median"]["overhead_s"]
        ok = overhead <= TARGET_IN_PROCESS_S and warm["success"]
        lines.append(
            f"{mark(ok)} in_process overhead {overhead:.3f} s per task (warm) "
            f"<= {TARGET_IN_PROCESS_S:g} s"
        )
    cold = in_process["cold"]
    if "failed" not in cold:
        total = cold["import_s"] + cold["first_call"]["overhead_s"]
        lines.append(
            f"INFO in_process overhead in a fresh process (what an Airflow 3 task process "
            f"pays): {total:.3f} s = import {cold['import_s']:.3f} s + 1st call - steps "
            f"{cold['first_call']['overhead_s']:.3f} s"
        )
    return lines


def print_report(payload: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(width=160)
    results, timeout = payload["results"], payload["timeout_s"]
    console.print(parse_table(results, timeout))
    if any(r["size"] != "real" for r in results):
        console.print(phases_table(results))
    console.print(in_process_table(payload["in_process"]))
    for line in verdicts(payload["analysis"], payload["in_process"]):
        console.print(line)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--worker" in argv:
        run_worker(argv)
        return
    parser = argparse.ArgumentParser(description="OneRing Airflow bridge benchmark")
    parser.add_argument("--sizes", default="250,1000,10000", help="comma-separated asset counts")
    parser.add_argument("--repeat", type=int, default=5, help="parse runs per case (median)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per parse run")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument(
        "--no-gc-freeze", action="store_true", help="do not gc.freeze() before fork"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bridge.json")
    args = parser.parse_args(argv)
    args.repeat = max(1, args.repeat)
    from rich.console import Console

    console = Console(stderr=True)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="onering-bench-bridge-"))
    try:
        bench = Bench(args, scratch, console)
        results = [bench.real()]
        results += [bench.synthetic(int(s)) for s in args.sizes.split(",") if s.strip()]
        in_process = {"warm": {"failed": "skipped"}, "cold": {"failed": "skipped"}}
        if not args.skip_in_process:
            in_process = bench.in_process()
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    payload = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "repeat": args.repeat,
        "timeout_s": args.timeout,
        "budget_s": args.budget,
        "results": results,
        "analysis": analyze(results, args.timeout),
        "in_process": in_process,
        "bench_seconds": time.perf_counter() - started,
    }
    print_report(payload)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.log(f"wrote {args.out} (bench took {payload['bench_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
