"""Where Bronze's time goes: each phase of the flights asset's work, on one source.

    .venv/bin/python -m bench.bronze_phases [--scale 10] [--repeat 3]

The phases the Bronze asset runs, in order, called as it calls them: the source read and
parse (``SourceResource.land``), the ingestion columns (``stamp``), the split into months
(``split``), the checks, and the publish of one Parquet file per month into a fresh lake.
Beside them, the floor of the same work with the bare engine (pyarrow: read every column
as a string, write one zstd Parquet file per month), in the same run. The source is the
deterministic generator's (``bench/generate.py``); the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _timed(f: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = f()
    return time.perf_counter() - started, result


def phases(source_dir: Path) -> dict[str, float]:
    """One pass of the asset's phases on ``source_dir``'s flights; seconds per phase."""
    from onering_assets.bronze.assets import _audit
    from onering_assets.bronze.ingest import split, stamp
    from onering_assets.catalog import BronzeTable, load_catalog
    from onering_assets.resources import LakeResource, SourceResource

    table = load_catalog().table("bronze", "flights")
    assert isinstance(table, BronzeTable)
    lake = LakeResource(url=Path(tempfile.mkdtemp(prefix="onering-bench-bronze-")).as_uri())
    t: dict[str, float] = {}
    t["read and parse"], landing = _timed(
        lambda: SourceResource(path=str(source_dir)).land("flights")
    )
    t["ingestion columns"], stamped = _timed(
        lambda: stamp(landing.table, batch_id="bench", source=landing.label, lines=landing.lines)
    )
    t["split into months"], landed = _timed(
        lambda: replace(split(stamped, table, None), malformed=landing.malformed)
    )
    t["checks"], _ = _timed(lambda: _audit(table, landed))
    parts = {k or None: p for k, p in landed.by_partition.items()}
    t["publish Parquet"], _ = _timed(lambda: lake.publish("bronze", "flights", "bench", parts))
    return t


def floor(source_dir: Path) -> float:
    """pyarrow alone: every column a string, one zstd Parquet file per month."""
    import pyarrow.parquet as pq
    from pyarrow import csv

    from onering_assets.bronze.ingest import pc
    from onering_assets.resources.source import SourceResource

    path = SourceResource(path=str(source_dir)).locate("flights")
    out = Path(tempfile.mkdtemp(prefix="onering-bench-bronze-floor-"))
    started = time.perf_counter()
    with csv.open_csv(path) as reader:  # the header only
        names = reader.schema.names
    data = csv.read_csv(
        path, convert_options=csv.ConvertOptions(column_types=dict.fromkeys(names, "string"))
    )
    month = pc.binary_join_element_wise(data["year"], pc.utf8_lpad(data["month"], 2, "0"), "-")
    for key in pc.unique(month).to_pylist():
        pq.write_table(
            data.filter(pc.equal(month, key)), out / f"{key}.parquet", compression="zstd"
        )
    return time.perf_counter() - started


def main() -> None:
    from bench.generate import generate

    parser = argparse.ArgumentParser(
        description="Where Bronze's time goes, beside its pyarrow floor"
    )
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = Path(tempfile.gettempdir()) / f"onering-bench-source-x{args.scale}"
    generate(source, args.scale)
    runs = [phases(source) for _ in range(args.repeat)]
    floors = [floor(source) for _ in range(args.repeat)]
    table = Table(title=f"Bronze flights at {args.scale}x, median of {args.repeat}")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for name in runs[0]:
        table.add_row(name, f"{statistics.median(r[name] for r in runs):.2f}")
    total = statistics.median(sum(r.values()) for r in runs)
    table.add_row("[b]OneRing's Bronze work[/b]", f"[b]{total:.2f}[/b]")
    table.add_row("floor: pyarrow read + monthly Parquet", f"{statistics.median(floors):.2f}")
    table.add_row("ratio", f"{total / statistics.median(floors):.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
