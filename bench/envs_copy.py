"""Environment creation against a full copy of the same tables, on one built state.

``measure_envs(state, source)`` builds the medallion in ``state`` from ``source`` (every
month), then, in the same process and on the same stores: creates a zero-copy environment
(``change.envs.create``) and times it and the disk it adds (``du``, each hard-linked file
once), then copies the same tables the plain way (Silver: ``CREATE TABLE … AS`` then
``INSERT … SELECT``; Gold: ``CREATE TABLE … AS TABLE``) and times that and its disk. Both are
dropped afterwards.
"""

from __future__ import annotations

import os
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


def measure_envs(state: Path, source: Path | None) -> dict[str, Any]:
    from onering_assets.definitions import resources_for

    built_s = build(state, source)
    print(f"built the medallion in {built_s:.0f} s", file=sys.stderr, flush=True)
    settings = Settings(profile="local", state_dir=state, source_dir=source)
    resources = resources_for(settings)
    ch, pg = resources["clickhouse"], resources["postgres"]
    client = ch.get_client()  # type: ignore[attr-defined]
    store, gold = settings.clickhouse_dir, settings.postgres_dir
    try:
        with pg.connect() as conn:  # type: ignore[attr-defined]
            before = _du(store) + _du(gold)
            started = time.perf_counter()
            made = envs.create(client, conn, "bench", ch.another_client)  # type: ignore[attr-defined]
            env_s = time.perf_counter() - started
            env_bytes = _du(store) + _du(gold) - before
            print(f"environment created in {env_s:.2f} s", file=sys.stderr, flush=True)
            before = _du(store) + _du(gold)
            started = time.perf_counter()
            tables, rows = _full_copy(client, conn)
            copy_s = time.perf_counter() - started
            copy_bytes = _du(store) + _du(gold) - before
            envs.drop(client, conn, "bench")
            client.command("DROP DATABASE silver_fullcopy SYNC")
            conn.execute("DROP SCHEMA gold_fullcopy CASCADE")
            conn.commit()
    finally:
        ch.close()  # type: ignore[attr-defined]
    return {
        "build_s": built_s,
        "silver_tables": tables,
        "silver_rows": rows,
        "parts": made.parts,
        "marts": made.marts,
        "env_s": env_s,
        "env_bytes": env_bytes,
        "copy_s": copy_s,
        "copy_bytes": copy_bytes,
    }
