"""What is deployed: each published (table, partition)'s declaration, kept in ClickHouse.

Every Silver and Gold publish records, after it committed, the digest of the table's
``Source`` for each partition it wrote and the digests of the sources of the tables it read
(``inputs``), and keeps each source's text once (content-addressed). `onering plan` compares
these with the files. A record is written only after the data is published: a crash between
the two leaves the old record, so the next plan shows the table again and apply rebuilds it
(never the other way round, a new record over old data).

Readers never create anything: a store where nothing was recorded has no deployment.
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from onering_assets import namespaces
from onering_assets.catalog import SqlTable, load_catalog
from onering_assets.change.sources import Source, of_table, of_view
from onering_assets.chtables import table_exists

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from onering_assets.features.views import View

DATABASE = "onering"
DEPLOYED = f"{DATABASE}.deployed"
SOURCES = f"{DATABASE}.declared_sources"
PROD = namespaces.PROD
WHOLE = ""  # the partition of an unpartitioned table

_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"CREATE TABLE IF NOT EXISTS {DEPLOYED} (env String, key String, partition String, "
    "source String, inputs String, run_id String, recorded_at DateTime64(3, 'UTC'), "
    "removed UInt8, version UInt64) ENGINE = ReplacingMergeTree(version) "
    "ORDER BY (env, key, partition)",
    f"CREATE TABLE IF NOT EXISTS {SOURCES} (digest String, source String) "
    "ENGINE = ReplacingMergeTree ORDER BY digest",
)


@dataclass(frozen=True)
class Deployed:
    """One published partition of one table (``WHOLE`` for an unpartitioned table)."""

    key: str
    partition: str
    source: str  # digest of the Source it was built from
    inputs: dict[str, str]  # upstream key -> digest of its Source when this was built
    run_id: str


def _exists(client: Client) -> bool:
    return table_exists(client, DATABASE, "deployed")


# Clients that created the record tables: one per run (the resource closes it after), so a
# run's other publishes skip the three CREATE … IF NOT EXISTS round trips.
_created: weakref.WeakSet[Client] = weakref.WeakSet()


def _create(client: Client) -> None:
    if client in _created:
        return
    for statement in _DDL:
        client.command(statement)
    _created.add(client)


def record(
    client: Client,
    source: Source,
    inputs: list[Source],
    partitions: list[str] | None,
    run_id: str,
    env: str = PROD,
) -> None:
    """Record that ``partitions`` (None: the whole table) now hold what ``source`` declares."""
    _create(client)
    _keep_sources(client, [source, *inputs])
    used = json.dumps({s.key: s.digest for s in inputs}, sort_keys=True)
    parts = partitions if partitions is not None else [WHOLE]
    insert(client, [row(env, source.key, p, source.digest, used, run_id) for p in parts])


def publish_sources(table: SqlTable | View) -> tuple[Source, list[Source]]:
    """What a publish of ``table`` records: its source and those of the tables it reads."""
    catalog = load_catalog()
    if isinstance(table, SqlTable):
        source, reads = of_table(table), table.upstream
    else:
        source, reads = of_view(table), table.inputs
    return source, [of_table(catalog.table(layer, name)) for layer, name in reads]


def record_deployment(
    context: Any, client: Client, table: SqlTable | View, partitions: list[str] | None
) -> None:
    """After a publish committed: record it, or warn (the next plan then shows it again)."""
    try:
        env = namespaces.current() or PROD
        record(client, *publish_sources(table), partitions, context.run_id, env)
    except Exception as err:  # the data is published; a missing record only over-plans
        context.log.warning(f"published, but could not record the declaration for plan: {err}")


def forget(client: Client, key: str, env: str = PROD) -> None:
    """Mark every partition of a table no longer declared as removed (its data is kept)."""
    if not _exists(client):
        return
    rows = rows_of(list(deployed(client, env).get(key, {}).values()), env, removed=1)
    insert(client, rows)


_COLUMNS = (
    "env",
    "key",
    "partition",
    "source",
    "inputs",
    "run_id",
    "recorded_at",
    "removed",
    "version",
)


def row(
    env: str, key: str, partition: str, source: str, inputs: str, run_id: str, removed: int = 0
) -> list:
    now = datetime.now(UTC)
    return [env, key, partition, source, inputs, run_id, now, removed, time.time_ns()]


def rows_of(records: list[Deployed], env: str, removed: int = 0) -> list[list]:
    """Records as rows of ``env`` (copied to an environment, promoted, or marked removed)."""
    return [
        row(env, d.key, d.partition, d.source, json.dumps(d.inputs), d.run_id, removed)
        for d in records
    ]


def copy_records(client: Client, source: str, targets: list[str]) -> None:
    """Every live record of ``source`` as each of ``targets``', in one statement (one part)."""
    if not _exists(client):
        return
    client.command(
        f"INSERT INTO {DEPLOYED} ({', '.join(_COLUMNS)}) SELECT arrayJoin({{t:Array(String)}}), "
        "key, partition, source, inputs, run_id, now64(3, 'UTC'), 0, "
        f"toUInt64(toUnixTimestamp64Nano(now64(9))) FROM {DEPLOYED} FINAL "
        "WHERE env = {s:String} AND NOT removed",
        parameters={"s": source, "t": targets},
    )


def forget_env(client: Client, env: str) -> None:
    """Delete every record of an environment (never production's)."""
    if env != PROD and _exists(client):
        client.command(
            f"DELETE FROM {DEPLOYED} WHERE env = {{env:String}}", parameters={"env": env}
        )


def insert(client: Client, rows: list[list]) -> None:
    if rows:
        client.insert(DEPLOYED, rows, column_names=list(_COLUMNS))


def _keep_sources(client: Client, sources: list[Source]) -> None:
    digests = sorted({s.digest for s in sources})
    known = client.query(
        f"SELECT DISTINCT digest FROM {SOURCES} WHERE digest IN {{d:Array(String)}}",
        parameters={"d": digests},
    ).result_rows
    have = {str(r[0]) for r in known}
    new = {s.digest: s.to_json() for s in sources if s.digest not in have}
    if new:
        client.insert(SOURCES, [[d, t] for d, t in new.items()], column_names=["digest", "source"])


def deployed(client: Client, env: str = PROD) -> dict[str, dict[str, Deployed]]:
    """Every table's published partitions in ``env``: key -> partition -> record."""
    if not _exists(client):
        return {}
    rows = client.query(
        f"SELECT key, partition, source, inputs, run_id FROM {DEPLOYED} FINAL "
        "WHERE env = {env:String} AND NOT removed",
        parameters={"env": env},
    ).result_rows
    out: dict[str, dict[str, Deployed]] = {}
    for key, partition, source, inputs, run_id in rows:
        out.setdefault(key, {})[partition] = Deployed(
            key, partition, source, json.loads(inputs), run_id
        )
    return out


def sources(client: Client, digests: set[str]) -> dict[str, Source]:
    """The recorded sources with these digests."""
    if not digests or not _exists(client):
        return {}
    rows = client.query(
        f"SELECT digest, any(source) FROM {SOURCES} WHERE digest IN {{d:Array(String)}} "
        "GROUP BY digest",
        parameters={"d": sorted(digests)},
    ).result_rows
    return {str(d): Source.from_json(str(t)) for d, t in rows}
