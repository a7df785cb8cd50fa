"""Dev environments and `onering plan`: creation against a full copy, and plan time.

    python -m bench.envs [--scale 10] [--tables 1000] [--repeat 5]

Environment: the medallion is built at ``--scale`` (a generated source, as bench.pipeline
uses), then a zero-copy environment is created and the same tables are fully copied, in the
same process on the same stores (``bench/envs_copy.py``): time and added disk of each, the
ratio beside its target (≤ 5 % of the copy's time and space).

Plan:
For each project, what a plan costs after the interpreter has imported OneRing (the CLI's
import time is printed apart): reading and digesting every declared file
(``project_sources``), reading what is deployed from a real chDB store (every table recorded
for 12 months), and planning — once with nothing changed, once with one Silver table's
expression changed (the changed table and its readers are parsed). The target, plan ≤ 1 s
for 1,000 tables, is printed beside each measured median.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.plan_project import deployed_for, write_project
from onering_assets.change import state
from onering_assets.change.plan import make_plan
from onering_assets.change.sources import project_sources
from onering_assets.settings import PLATFORM_DIR
from onering_assets.sqltests.run import scratch_clickhouse

TARGET_S = 1.0


def _median(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _record_all(client, sources) -> None:
    deployed = deployed_for(sources)
    for source in sources.values():
        if source.layer == "bronze":
            continue
        parts = sorted(deployed[source.key])
        inputs = [sources[k] for k in deployed[source.key][parts[0]].inputs]
        state.record(client, source, inputs, None if parts == [""] else parts, "bench")


def measure(platform: Path, changed: str, old: str, new: str, repeat: int, folder: Path) -> dict:
    with scratch_clickhouse(folder) as client:
        sources = project_sources(platform)
        started = time.perf_counter()
        _record_all(client, sources)
        record_s = time.perf_counter() - started
        read_s, current = _median(lambda: project_sources(platform), repeat)
        load_s, deployed = _median(lambda: state.deployed(client), repeat)

        def lookup(digests: set[str]) -> dict:
            return state.sources(client, digests)

        def months(_: str) -> list[str]:
            return []

        same_s, same = _median(lambda: make_plan(current, deployed, lookup, months), repeat)  # type: ignore[arg-type]
        source = current[changed]  # type: ignore[index]
        assert old in source.sql, f"{old!r} not in {changed}"
        edited = {**current, changed: dataclasses.replace(source, sql=source.sql.replace(old, new))}  # type: ignore[dict-item]
        one_s, one = _median(lambda: make_plan(edited, deployed, lookup, months), repeat)  # type: ignore[arg-type]
    return {
        "tables": same.declared,  # type: ignore[attr-defined]
        "records": sum(len(p) for p in deployed.values()),  # type: ignore[attr-defined]
        "record_all_s": record_s,
        "read_files_s": read_s,
        "read_deployed_s": load_s,
        "plan_unchanged_s": same_s,
        "planned_unchanged": len(same.tables),  # type: ignore[attr-defined]
        "plan_one_change_s": one_s,
        "planned_one_change": len(one.tables),  # type: ignore[attr-defined]
        "total_unchanged_s": read_s + load_s + same_s,
        "total_one_change_s": read_s + load_s + one_s,
    }


def import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import onering_assets.cli; "
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def environment(scale: int, repeat: int) -> None:
    from bench.envs_copy import measure_envs
    from bench.harness import state_folder
    from bench.pipeline import source_for

    source, _ = source_for(scale)
    with state_folder("onering-bench-envs-", keep=False) as state:
        r = measure_envs(state / "state", source, repeat)
    print(f"\nenvironment at {scale}x: medallion built in {r['build_s']:.0f} s; "
          f"{r['silver_tables']} Silver tables ({r['silver_rows']:,} rows, {r['parts']} "
          f"partitions), {r['marts']} marts; median of {repeat} (min..max)")  # fmt: skip
    env_s, copy_s = statistics.median(r["env_times"]), statistics.median(r["copy_times"])

    def spread(times: list[float]) -> str:
        return f"{statistics.median(times):.3f} s ({min(times):.3f}..{max(times):.3f})"

    print("what | seconds | added disk | share of the full copy | target")
    print(f"full copy | {spread(r['copy_times'])} | {r['copy_bytes'] / 1e6:.1f} MB | 100 % | -")
    time_pct = 100 * env_s / copy_s
    disk_pct = 100 * r["env_bytes"] / r["copy_bytes"]
    print(f"environment | {spread(r['env_times'])} | {r['env_bytes'] / 1e6:.2f} MB | "
          f"{time_pct:.1f} % of the time, {disk_pct:.1f} % of the space | ≤ 5 %")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--tables", type=int, default=1000, help="the synthetic project's tables; 0 skips it"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=int, default=10, help="0 skips the environment part")
    args = parser.parse_args()
    if args.scale:
        environment(args.scale, args.repeat)
    with tempfile.TemporaryDirectory(prefix="onering-bench-plan-") as tmp:
        root = Path(tmp)
        rows = {
            "demo graph": measure(
                PLATFORM_DIR,
                "silver/flights",
                "arr_delay_min AS arr_delay",
                "arr_delay_min + 1 AS arr_delay",
                args.repeat,
                root / "demo-store",
            )
        }
        if args.tables > 0:
            silver = max(1, args.tables * 6 // 10)
            synthetic = write_project(root / "synthetic", silver, args.tables - silver)
            rows[f"synthetic {args.tables}"] = measure(
                synthetic,
                f"silver/s_{min(3, silver - 1)}",
                "toInt64OrNull(c1) AS v1",
                "toInt64OrNull(c1) * 2 AS v1",
                args.repeat,
                root / "synthetic-store",
            )
    print(f"\nplan time, median of {args.repeat} (after `import onering_assets.cli`: "
          f"{import_seconds():.2f} s, paid once per command)")  # fmt: skip
    header = ("project", "tables", "records", "read files", "read deployed", "plan same",
              "total same", "plan 1 change", "total 1 change", "planned", "target")  # fmt: skip
    print(" | ".join(header))
    for name, r in rows.items():
        print(
            f"{name} | {r['tables']} | {r['records']} | {r['read_files_s']:.3f} s | "
            f"{r['read_deployed_s']:.3f} s | {r['plan_unchanged_s']:.3f} s | "
            f"{r['total_unchanged_s']:.3f} s | {r['plan_one_change_s']:.3f} s | "
            f"{r['total_one_change_s']:.3f} s | {r['planned_unchanged']}/{r['planned_one_change']}"
            f" | ≤ {TARGET_S:.0f} s"
        )


if __name__ == "__main__":
    main()
