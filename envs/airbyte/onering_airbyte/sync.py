"""Run one declared Airbyte connection with PyAirbyte and write each stream as Parquet.

Launched by the connection's asset through Dagster Pipes with this environment's Python.
The connector is never looked up in Airbyte's online registry nor installed at run time:
it is the executable of its own environment (``connectors/<source>/.venv/bin/<source>``,
locked and created by ``make setup`` from PyPI), handed to PyAirbyte as
``local_executable``. Extras: ``connection`` (the YAML's source, config and streams),
``out_dir`` (one ``<stream>.parquet`` each) and ``work_dir`` (PyAirbyte's DuckDB cache).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ERROR_FILE = "error.txt"
CONNECTORS = Path(__file__).resolve().parent.parent / "connectors"


def executable(source: str) -> Path:
    path = CONNECTORS / source / ".venv" / "bin" / source
    if not path.is_file():
        raise FileNotFoundError(
            f"connector {source} is not installed ({path} is missing): `make setup` creates "
            f"envs/airbyte/connectors/{source}/.venv"
        )
    return path


def sync(connection: dict[str, Any], out_dir: Path, work_dir: Path) -> dict[str, Any]:
    """Check the config, read the selected streams in full, write them; counts per stream."""
    import airbyte as ab
    import pyarrow.parquet as pq
    from airbyte.caches import DuckDBCache

    source = ab.get_source(
        connection["source"],
        config=connection["config"],
        local_executable=executable(connection["source"]),
        install_if_missing=False,
    )
    source.validate_config()  # against the connector's own spec (JSON Schema)
    source.check()  # the connector's own check (e.g. the file is there and readable)
    streams = list(connection["streams"])
    source.select_streams(streams)
    cache = DuckDBCache(db_path=work_dir / "cache.duckdb", cache_dir=work_dir / "cache")
    started = time.monotonic()
    result = source.read(cache=cache, force_full_refresh=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for stream in streams:
        table = result[stream].to_arrow().to_table()
        pq.write_table(table, out_dir / f"{stream}.parquet")
        rows[stream] = table.num_rows
    return {"rows": rows, "seconds": round(time.monotonic() - started, 2)}


def describe(err: Exception) -> str:
    """One line: PyAirbyte's message and the connector's reason (its context), its log."""
    message = str(getattr(err, "message", "") or "") or " ".join(str(err).split()[:30])
    context: Any = getattr(err, "context", None)
    if isinstance(context, dict) and "error_message" in context:
        path = ".".join(str(p) for p in context.get("error_path", ()))
        reason = f"{path}: {context['error_message']}" if path else str(context["error_message"])
    elif context:
        reason = str(
            context.get("failure_reason", context) if isinstance(context, dict) else context
        )
    else:
        reason = ""
    log = getattr(err, "log_file", None)
    text = " ".join(f"{type(err).__name__}: {message} {reason}".split())
    return f"{text} (connector log: {log})" if log else text


def main() -> None:
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        connection: dict[str, Any] = dict(pipes.get_extra("connection"))  # type: ignore[arg-type]
        out_dir, work_dir = (
            Path(str(pipes.get_extra("out_dir"))),
            Path(str(pipes.get_extra("work_dir"))),
        )
        pipes.log.info(
            f"reading {connection['source']} with PyAirbyte "
            f"(AIRBYTE_OFFLINE_MODE={os.environ.get('AIRBYTE_OFFLINE_MODE', '')})"
        )
        try:
            done = sync(connection, out_dir, work_dir)
        except Exception as err:  # the reason, for the asset to raise in one line
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / ERROR_FILE).write_text(describe(err)[:2000])
            raise
        for stream, count in done["rows"].items():
            pipes.report_asset_materialization(
                asset_key=f"airbyte/{connection['name']}_{stream}",
                metadata={
                    "airbyte_source": connection["source"],
                    "airbyte_records": {"raw_value": count, "type": "int"},
                    "airbyte_seconds": {"raw_value": done["seconds"], "type": "float"},
                },
            )


if __name__ == "__main__":
    main()
