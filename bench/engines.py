"""Bronze through Spark against Arrow, and the Flink job, each beside its bare-engine floor.

    .venv/bin/python -m bench.engines [--scales 1 10] [--repeat 1]

For each scale (the deterministic generator's flights, ``bench/generate.py``):

- Bronze parse, Arrow: ``SourceResource.land("flights")`` (what the Bronze asset calls)
  against the floor, pyarrow's ``read_csv`` of the same bytes with every column a string;
- Bronze parse, Spark: ``spark_ingest.land`` (lines numbered, ``from_csv``, bad lines set
  aside, handed back as Arrow) against the floor, ``spark.read.csv`` of the same file with
  every column a string, collected with ``toArrow``; the session is started first and not
  counted (its start is reported alone).

At scale 1, the Flink job (``envs/flink``, a local mini-cluster, both queries) on the year's
departures, the wall time of its process beside the time the same two answers take without
Flink (``flink_io.reference``: an Arrow group-by and a scan). Writes
``bench/results/engines.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as _compute
from pyarrow import csv
from rich.console import Console
from rich.table import Table

from bench.generate import generate
from bench.harness import RESULTS_DIR, machine, write_results
from onering_assets.resources.source import BOM, SourceResource, header, unpack

pc: Any = _compute  # generated at import: no stubs
RESULT = RESULTS_DIR / "engines.json"
GENERATED = Path(tempfile.gettempdir()) / "onering-bench-source"


def _median(runs: list[float]) -> float:
    return statistics.median(runs)


def _time(fn: Any, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return _median(runs)


def bronze(scale: int, repeat: int, spark: Any) -> dict[str, Any]:
    from onering_assets.bronze import spark_ingest

    folder = GENERATED / f"x{scale}"
    generate(folder, scale)
    source = SourceResource(path=str(folder))
    path = source.locate("flights")
    data = unpack(path)
    plain = Path(tempfile.mkdtemp()) / "flights.csv"
    plain.write_bytes(data)
    names = header(data.removeprefix(BOM), str(path))[0]
    strings = csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
    rows = source.land("flights").table.num_rows
    plain_source = SourceResource(path=str(plain.parent))
    return {
        "scale": scale,
        "rows": rows,
        "arrow": _time(lambda: source.land("flights"), repeat),
        "arrow_floor": _time(
            lambda: csv.read_csv(pa.BufferReader(data), convert_options=strings), repeat
        ),
        "spark": _time(lambda: spark_ingest.land(spark, plain_source, "flights"), repeat),
        "spark_floor": _time(
            lambda: (
                spark.read.option("header", True)
                .schema(", ".join(f"`{n}` STRING" for n in names))
                .csv(str(plain))
                .toArrow()
            ),
            repeat,
        ),
    }


def departures() -> pa.Table:
    """The year's departures as the Flink job reads them (local time, sorted)."""
    source = SourceResource()
    flights = source.land("flights").table
    dep = pc.cast(flights["dep_time"], pa.int32())
    keep = pc.and_(pc.is_valid(dep), pc.is_valid(flights["dep_delay"]))
    f = flights.filter(keep)
    dep = pc.cast(f["dep_time"], pa.int32())
    date = pc.strptime(
        pc.binary_join_element_wise(
            f["year"], pc.utf8_lpad(f["month"], 2, "0"), pc.utf8_lpad(f["day"], 2, "0"), "-"
        ),
        "%Y-%m-%d",
        "s",
    )
    minutes = pc.add(
        pc.multiply(pc.divide(dep, 100), 60),
        pc.subtract(dep, pc.multiply(pc.divide(dep, 100), 100)),
    )
    at = pc.add(pc.cast(date, pa.int64()), pc.multiply(pc.cast(minutes, pa.int64()), 60))
    local = pc.strftime(pc.cast(at, pa.timestamp("s")), "%Y-%m-%d %H:%M:%S")
    table = pa.table(
        {
            "carrier": f["carrier"],
            "flight": pc.cast(f["flight"], pa.int32()),
            "origin": f["origin"],
            "dest": f["dest"],
            "dep_local": local,
            "dep_delay": pc.cast(f["dep_delay"], pa.int32()),
        }
    )
    return table.sort_by(
        [("dep_local", "ascending"), ("carrier", "ascending"), ("flight", "ascending")]
    )


def flink(repeat: int) -> dict[str, Any]:
    from onering_assets.stream import flink_io
    from onering_assets.stream.flink_resource import FLINK_ENV, FlinkResource

    table = departures()
    folder = Path(tempfile.mkdtemp(prefix="onering-bench-flink-"))
    path = folder / "departures.csv"
    csv.write_csv(table, str(path), csv.WriteOptions(include_header=False))
    python = FlinkResource().interpreter()
    script = (
        "import sys, json; from onering_flink.flights_job import run; "
        f"print(json.dumps(run({str(path)!r}, sys.argv[1])))"
    )
    runs, job = [], []
    for i in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [python, "-c", script, str(folder / f"out{i}")],
            cwd=FLINK_ENV,
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        runs.append(time.perf_counter() - started)
        job.append(float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"]))
    read = flink_io.read_departures(path)
    reference = _time(
        lambda: [flink_io.reference(n, read) for n in ("departures_hourly", "delay_streaks")],
        repeat,
    )
    return {
        "departures": table.num_rows,
        "process": _median(runs),
        "job": _median(job),
        "reference": reference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    console = Console()
    began = time.perf_counter()
    from onering_assets.resources.spark import SparkResource

    started = time.perf_counter()
    # Bronze through Spark hands the landed file's rows to the step as Arrow: Spark's 1g
    # default heap runs out on the 10x flights (3.4 M rows). Set it the same way for big files:
    # ONERING_SPARK_MASTER's cluster, or spark.driver.memory in the resource's conf.
    spark = SparkResource(app_name="onering-bench", conf={"spark.driver.memory": "4g"}).session()
    session_s = time.perf_counter() - started
    results = [bronze(s, args.repeat, spark) for s in args.scales]
    flink_result = flink(args.repeat)

    table = Table(title=f"Engines (Spark session start {session_s:.1f} s, not counted)")
    for column in ("what", "rows", "OneRing", "floor", "OneRing / floor"):
        table.add_column(column, justify="right" if column != "what" else "left")
    for r in results:
        for engine in ("arrow", "spark"):
            floor = r[f"{engine}_floor"]
            table.add_row(
                f"Bronze parse, {engine}, {r['scale']}×",
                f"{r['rows']:,}",
                f"{r[engine]:.2f} s",
                f"{floor:.2f} s",
                f"{r[engine] / floor:.2f}×",
            )
    table.add_row(
        "Flink job (process; job alone)",
        f"{flink_result['departures']:,}",
        f"{flink_result['process']:.1f} s; {flink_result['job']:.1f} s",
        f"{flink_result['reference']:.2f} s (no Flink)",
        f"{flink_result['process'] / flink_result['reference']:.0f}×",
    )
    console.print(table)
    write_results(
        RESULT,
        {
            "machine": machine(),
            "session_s": session_s,
            "bronze": results,
            "flink": flink_result,
            "bench_seconds": time.perf_counter() - began,
        },
        console,
    )


if __name__ == "__main__":
    main()
