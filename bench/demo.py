"""What a new user waits for: `make demo` on a fresh state folder, then again on the same one.

    .venv/bin/python -m bench.demo [--repeat N]

Runs `make demo` from the repo root with ONERING_STATE_DIR set to a new temporary folder:
once cold (the run creates the lake, chDB, the embedded Postgres, Dagster's storage), then
``--repeat`` times warm (default 3). Each run records the wall time of `make demo` and the
time `onering demo` reports for the run itself ("... done in X s" on stdout); the difference
is what lies outside the run (make, Python start-up and imports, exit). After the cold run,
`make -n demo` must show no set-up work (only `.venv/bin/onering demo`). The venv is
assumed synced. Prints a table, writes ``bench/results/demo.json``, deletes the folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "demo.json"
TARGET_WARM_S = 20.0
BEFORE = "14–17 s measured before"
DONE = re.compile(r"\bdone in ([0-9.]+) s\b")
RUN_TIMEOUT_S = 1800


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            kb = int(line.split()[1])
    ram = f"{kb / 1024**2:.0f} GB RAM" if kb else "RAM unknown"
    return f"{os.cpu_count()} cores, {ram}, Python {platform.python_version()}, {platform.system()}"


def make_demo(env: dict[str, str]) -> dict[str, Any]:
    """One `make demo`: wall time, the time onering demo reports, the 1-min load after it."""
    started = time.perf_counter()
    proc = subprocess.run(
        ["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"make demo failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    found = DONE.search(proc.stdout)
    if found is None:
        sys.exit(f"no 'done in X s' in onering demo's output:\n{proc.stdout[:2000]}")
    reported = float(found.group(1))
    print(f"  make demo: {wall:.1f} s wall, onering demo {reported:.1f} s", file=sys.stderr)
    return {"wall_s": wall, "reported_s": reported, "load_1min_after": os.getloadavg()[0]}


def setup_work(env: dict[str, str]) -> tuple[list[str], float]:
    """The commands `make -n demo` would run besides the demo itself (`:` is a no-op), and
    how long make takes to decide that (its own cost, without running anything)."""
    started = time.perf_counter()
    proc = subprocess.run(["make", "-n", "demo"], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return [line for line in lines if line not in (":", ".venv/bin/onering demo")], seconds


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm runs (default 3)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    date = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_start = load()
    state = Path(tempfile.mkdtemp(prefix="onering-bench-demo-"))
    env = {**os.environ, "ONERING_STATE_DIR": str(state)}
    try:
        print(f"cold run into {state}", file=sys.stderr)
        cold = make_demo(env)
        extra, make_n_s = setup_work(env)
        warm = []
        for i in range(args.repeat):
            print(f"warm run {i + 1}/{args.repeat}", file=sys.stderr)
            warm.append(make_demo(env))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    load_end = load()

    walls = [r["wall_s"] for r in warm]
    reported = [r["reported_s"] for r in warm]
    overhead = [r["wall_s"] - r["reported_s"] for r in warm]
    n = f"median of {args.repeat} (min–max)"
    after = ", ".join(f"{r['load_1min_after']:.2f}" for r in warm)
    verdict = "met" if statistics.median(walls) <= TARGET_WARM_S else "MISSED"
    rows = [
        ("`make demo` cold (fresh state folder)", f"{cold['wall_s']:.1f} s", ""),
        ("  of which `onering demo` reports", f"{cold['reported_s']:.1f} s", ""),
        (f"`make demo` warm, {n}", spread(walls), f"≤ {TARGET_WARM_S:.0f} s ({verdict}); {BEFORE}"),
        (f"  of which `onering demo` reports, {n}", spread(reported), ""),
        (f"  outside that (make, Python start-up, imports, exit), {n}", spread(overhead), ""),
        ("  make alone (`make -n demo`)", f"{make_n_s:.2f} s", ""),
        ("set-up work on a warm demo (`make -n demo`)", "; ".join(extra) or "none", "none"),
        ("load average (1 / 5 / 15 min) at start", load_start, ""),
        ("1-min load average after each warm run", after, ""),
        ("load average (1 / 5 / 15 min) at end", load_end, ""),
    ]
    print(f"\n`make demo` on {machine()}; {date}\n")
    print("| metric | value | floor / target |\n|---|---|---|")
    for metric, value, target in rows:
        print(f"| {metric} | {value} | {target} |")

    RESULT.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "date": date,
        "machine": machine(),
        "load_start": load_start,
        "load_end": load_end,
        "cold": cold,
        "warm": warm,
        "setup_work_on_warm_demo": extra,
        "make_n_demo_s": make_n_s,
        "target_warm_s": TARGET_WARM_S,
        "warm_median_wall_s": statistics.median(walls),
        "warm_median_reported_s": statistics.median(reported),
        "warm_median_make_overhead_s": statistics.median(overhead),
    }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {RESULT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
