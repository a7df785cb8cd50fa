"""Environment creation against a full copy of the same tables, on one built state.

``measure_envs(state, source, repeat)`` builds the medallion in ``state`` from ``source``
(every month), then, in the same process and on the same stores, ``repeat`` times each:
creates a zero-copy environment (``change.envs.create``), timed, with the disk the first
adds (``du``, each hard-linked file once), and drops it; then copies the same tables the
plain way (Silver: ``CREATE TABLE … AS`` then ``INSERT … SELECT``; Gold: ``CREATE TABLE …
AS TABLE``), timed, with its disk, and drops the copy. Each run starts after ``sync``:
creating an environment writes metadata with ``fsync`` (ClickHouse's DDL), which would
otherwise also wait for the build's dirty pages to reach the disk, and the copy would
compete with their write-back.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from onering_assets.change import envs
from onering_assets.settings import Settings

MEDALLION = "group:bronze or group:silver or group:gold"


def _du(folder: Path) -> int:
    out = subprocess.run(["du", "-s", "-B1", str(folder)], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def build(state: Path, source: Path | None) -> float:
    env = {**os.environ, "ONERING_STATE_DIR": str(state), "DAGSTER_HOME": str(state / "dagster")}
    if source is not None:
        env["ONERING_SOURCE_DIR"] = str(source)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "materialize", "-s", MEDALLION],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _full_copy(client: Any, conn: Any) -> tuple[int, int]:
    from psycopg import sql

    client.command("CREATE DATABASE silver_fullcopy")
    tables = envs.published_tables(client)
    rows = 0
    for name in tables:
        client.command(f"CREATE TABLE silver_fullcopy.`{name}` AS silver.`{name}`")
        client.command(f"INSERT INTO silver_fullcopy.`{name}` SELECT * FROM silver.`{name}`")
        rows += int(client.query(f"SELECT count() FROM silver.`{name}`").result_rows[0][0])
    marts = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold' "
        "AND table_type = 'BASE TABLE'").fetchall()]  # fmt: skip
    with conn.transaction():
        conn.execute("CREATE SCHEMA gold_fullcopy")
        for mart in marts:
            conn.execute(
                sql.SQL("CREATE TABLE {c} AS TABLE {t}").format(
                    c=sql.Identifier("gold_fullcopy", mart), t=sql.Identifier("gold", mart)
                )
            )
    return len(tables), rows


def _timed(run: Any, undo: Any, folders: list[Path], repeat: int) -> tuple[list[float], int, Any]:
    """``run()`` ``repeat`` times, each after ``sync`` and followed by ``undo()``: its times,
    the disk the first run added, and the first run's result."""
    times, added, first = [], 0, None
    for i in range(repeat):
        os.sync()  # no run pays for writing back what the build or the last run left dirty
        before = sum(_du(f) for f in folders)
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
        if i == 0:
            added, first = sum(_du(f) for f in folders) - before, result
        undo()
    return times, added, first


def measure_envs(state: Path, source: Path | None, repeat: int = 5) -> dict[str, Any]:
    from onering_assets.definitions import resources_for

    built_s = build(state, source)
    print(f"built the medallion in {built_s:.0f} s", file=sys.stderr, flush=True)
    settings = Settings(profile="local", state_dir=state, source_dir=source)
    resources = resources_for(settings)
    ch, pg = resources["clickhouse"], resources["postgres"]
    client = ch.get_client()  # type: ignore[attr-defined]
    folders = [settings.clickhouse_dir, settings.postgres_dir]
    try:
        with pg.connect() as conn:  # type: ignore[attr-defined]

            def drop_copy() -> None:
                client.command("DROP DATABASE silver_fullcopy SYNC")
                conn.execute("DROP SCHEMA gold_fullcopy CASCADE")
                conn.commit()

            env_times, env_bytes, made = _timed(
                lambda: envs.create(client, conn, "bench", ch.another_connection),  # type: ignore[attr-defined]
                lambda: envs.drop(client, conn, "bench"),
                folders,
                repeat,
            )
            print(f"environment created in {statistics.median(env_times):.3f} s (median)",
                  file=sys.stderr, flush=True)  # fmt: skip
            copy_times, copy_bytes, (tables, rows) = _timed(
                lambda: _full_copy(client, conn), drop_copy, folders, repeat
            )
    finally:
        ch.close()  # type: ignore[attr-defined]
    return {
        "build_s": built_s,
        "silver_tables": tables,
        "silver_rows": rows,
        "parts": made.parts,
        "marts": made.marts,
        "env_times": env_times,
        "env_bytes": env_bytes,
        "copy_times": copy_times,
        "copy_bytes": copy_bytes,
    }
