"""Scale simulation, what a flight costs on disk: the 1x flights (336,776 real rows of 2013)
landed by OneRing's Bronze steps into a fresh lake, then typed and de-duplicated into
Silver's declared MergeTree tables in chDB, and each layer's bytes per row measured.

Bronze is the asset's own path (``SourceResource.land``, ``stamp``, ``split``,
``LakeResource.publish``: zstd Parquet, one file per month). Silver is the engine floor's
build (``bench.pipeline_floor.floor_silver``: the declared table DDL and the catalog's
SELECT, the same rows the Silver asset publishes, without staging and audit); its size is
ClickHouse's own count of the active parts (``system.parts``). The generator's 10x copies
differ only in the flight number, so they would compress better than real data: 1x is the
honest sample.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any


def bytes_per_row(state: Path) -> dict[str, Any]:
    """Bronze and Silver bytes per flight, measured on 1x data under ``state``."""
    from bench.pipeline_floor import floor_silver, open_chdb
    from bench.pipeline_scope import Stores
    from onering_assets.bronze.ingest import split, stamp
    from onering_assets.catalog import BronzeTable, SqlTable, load_catalog

    catalog = load_catalog()
    bronze = catalog.table("bronze", "flights")
    silver = catalog.table("silver", "flights")
    assert isinstance(bronze, BronzeTable) and isinstance(silver, SqlTable)
    stores = Stores.for_state(state, None)
    source = stores.source.locate("flights")
    landing = stores.source.land("flights")
    stamped = stamp(landing.table, batch_id="scale-sim", source=landing.label, lines=landing.lines)
    landed = replace(split(stamped, bronze, None), malformed=landing.malformed)
    parts: dict[str | None, Any] = {k or None: p for k, p in landed.by_partition.items()}
    stores.lake.publish("bronze", "flights", "scale-sim", parts)
    files = sorted((state / "lake" / "bronze" / "flights").rglob("*.parquet"))
    client = open_chdb(stores)
    try:
        silver_rows = floor_silver(client, silver, state / "lake")
        sizes = client.query(
            "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) "
            "FROM system.parts WHERE database = 'silver' AND active GROUP BY table"
        ).result_rows
    finally:
        client.close()
    by_table = {str(t): (int(r), int(d), int(u)) for t, r, d, u in sizes}
    rows, on_disk, uncompressed = by_table.get("flights", (0, 0, 0))
    bronze_bytes = sum(f.stat().st_size for f in files)
    return {
        "rows": landed.rows,
        "source_file": source.name,
        "source_bytes": source.stat().st_size,
        "bronze_files": len(files),
        "bronze_bytes": bronze_bytes,
        "bronze_bytes_per_row": bronze_bytes / landed.rows,
        "silver_rows": silver_rows,
        "silver_bytes": on_disk,
        "silver_bytes_per_row": on_disk / rows if rows else None,
        "silver_uncompressed_bytes_per_row": uncompressed / rows if rows else None,
        "silver_rejects_rows": by_table.get("flights_rejects", (0, 0, 0))[0],
    }
