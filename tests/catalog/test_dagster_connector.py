"""OpenMetadata's own Dagster connector names exactly the tables OneRing publishes.

What is real here: OneRing's assets, materialized for one month by the `onering` CLI; the real
``dagster-webserver`` on a loopback port serving OneRing's code location over that state; and
OpenMetadata's Dagster connector (``DagsterSource`` from openmetadata-ingestion 2.0.7.0, its
``DagsterClient`` and GraphQL queries), configured by the committed workflow
``platform/catalog/openmetadata/dagster-ingestion.yaml`` and run in the openmetadata environment
(``tests/catalog/dagster_connector_probe.py``; it cannot be imported in the main one).

No OpenMetadata server can run on this machine (it ships as container images and release
archives only), so the connector's ``metadata`` client is a recording stand-in that answers as a
server holding exactly the entities OneRing publishes (``build_document``'s entities: tables for
Silver and Gold, containers for Bronze), through ``get_by_name`` and the search index.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from airflow_bridge.processes import free_port
from onering_assets.definitions import build_definitions
from onering_assets.devserver import serving
from onering_assets.lineage.document import build_document
from onering_assets.settings import Settings
from tests.catalog.dagster_fixture import (
    LAYERS,
    OM_WORKFLOW,
    materialize_one_month,
    om_python,
    run_in_om_env,
)

PROBE = Path(__file__).with_name("dagster_connector_probe.py")
LABELS = ("database", "schema", "table")

pytestmark = pytest.mark.slow


@dataclass
class Built:
    state: Path
    run_id: str
    document: dict[str, Any]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_source) -> Built:
    """Every asset materialized for one month; OneRing's lineage document of that graph."""
    state = tmp_path_factory.mktemp("state")
    source = make_source()
    run_id = materialize_one_month(state, source)
    settings = Settings(profile="local", state_dir=state, source_dir=source)
    return Built(state, run_id, build_document(build_definitions(settings)))


@pytest.fixture(scope="module")
def connector(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """What the connector names, run against the real webserver on the built state."""
    om_python()  # skip before starting anything when the environment is missing
    work = tmp_path_factory.mktemp("connector")
    catalog = work / "catalog.json"
    entities = [{"fqn": e["fqn"], "entity": e["entity"]} for e in built.document["entities"]]
    catalog.write_text(json.dumps(entities))
    env = {**os.environ, "ONERING_PROFILE": "local"}
    with serving(built.state, free_port(), work / "webserver.log", daemon=False, env=env) as url:
        yield run_in_om_env(str(PROBE), str(OM_WORKFLOW), url, str(catalog))


def _entities(built: Built, layer: str) -> dict[str, dict[str, Any]]:
    return {e["key"]: e for e in built.document["entities"] if e["layer"] == layer}


def _materialized(built: Built) -> list[dict[str, Any]]:
    """The entities of the layers the state holds (``dagster_fixture.LAYERS``)."""
    return [e for e in built.document["entities"] if e["layer"] in LAYERS]


def test_every_materialization_carries_the_connector_labels_as_text(built: Built) -> None:
    """The connector reads ``database``/``schema``/``table`` from the latest materialization
    (not from the asset definition), as text entries: each asset's carries its spec's values."""
    defs = build_definitions(Settings(profile="local", state_dir=built.state, source_dir=None))
    graph = defs.resolve_asset_graph()
    keys = sorted(
        (k for k in graph.materializable_asset_keys if graph.get(k).group_name in LAYERS),
        key=lambda k: k.to_user_string(),
    )
    assert [k.to_user_string() for k in keys] == [e["key"] for e in _materialized(built)]
    with dg.DagsterInstance.from_config(str(built.state / "dagster")) as instance:
        for key in keys:
            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.asset_materialization is not None, key
            metadata = event.asset_materialization.metadata
            spec = graph.get(key).metadata
            for label in LABELS:
                assert isinstance(metadata[label], dg.TextMetadataValue), (key, label)
                assert metadata[label].value == spec[label], (key, label)


def test_the_connector_reads_the_labels_from_the_webserver(connector: dict, built: Built) -> None:
    for entity in _materialized(built):
        read = connector["assets"][entity["key"]]["labels"]
        expected = {"database": entity["database"], "schema": entity["schema"]}
        assert read == {**expected, "table": entity["name"]}, entity["key"]


def test_the_connector_resolves_exactly_the_silver_and_gold_tables_onering_publishes(
    connector: dict, built: Built
) -> None:
    """Each Silver and Gold asset resolves to the FQN OneRing publishes for it, and nothing else
    resolves: ``onering_clickhouse.clickhouse.silver.<table>``, ``onering_postgres.onering.gold.
    <table>`` (the connector tries each of ``dbServiceNames`` in order, Gold first on ClickHouse).
    """
    resolved = {k: a["resolved"] for k, a in connector["assets"].items() if a["resolved"]}
    tables = [e for layer in ("silver", "gold") for e in _entities(built, layer).values()]
    assert len(tables) == 8 and {e["entity"] for e in tables} == {"table"}
    assert resolved == {e["key"]: e["fqn"] for e in tables}
    assert resolved["silver/flights"] == "onering_clickhouse.clickhouse.silver.flights"
    assert resolved["gold/route_performance"] == "onering_postgres.onering.gold.route_performance"


def test_the_connector_cannot_name_bronze_containers(connector: dict, built: Built) -> None:
    """Bronze is published as containers (``onering_lake.bronze.<table>``, storage service
    ``onering_lake``); the connector resolves assets to Tables only, under the database services
    of ``dbServiceNames``. So for a Bronze asset it looks up ``<db service>.lake.bronze.<table>``
    (database ``lake`` from the materialization's label) as a Table, finds nothing, and adds no
    edge from Bronze: Bronze -> Silver lineage reaches the catalog only through OneRing's own
    publisher. It never looks up the container's FQN.
    """
    bronze = _entities(built, "bronze")
    assert len(bronze) == 5
    for key, entity in bronze.items():
        asset = connector["assets"][key]
        assert asset["resolved"] is None, key
        assert {x["entity"] for x in asset["lookups"]} == {"Table"}
        looked_up = {x["fqn"] for x in asset["lookups"]}
        table = entity["name"]
        assert looked_up == {
            f"onering_clickhouse.lake.bronze.{table}",
            f"onering_postgres.lake.bronze.{table}",
        }
        assert entity["fqn"] == f"onering_lake.bronze.{table}" not in looked_up


def test_the_connector_adds_exactly_onering_table_to_table_edges(
    connector: dict, built: Built
) -> None:
    fqn = {e["key"]: e for e in built.document["entities"]}
    between_tables = sorted(
        [fqn[edge["from"]]["fqn"], fqn[edge["to"]]["fqn"]]
        for edge in built.document["edges"]
        if fqn[edge["from"]]["entity"] == fqn[edge["to"]]["entity"] == "table"
    )
    assert connector["edges"] == between_tables
    assert [
        "onering_clickhouse.clickhouse.silver.flights",
        "onering_postgres.onering.gold.route_performance",
    ] in connector["edges"]
    from_bronze = [e for e in built.document["edges"] if e["from"].startswith("bronze/")]
    assert from_bronze, "OneRing's own document has the Bronze -> Silver edges"


def test_the_connector_names_its_pipeline_after_the_dagster_job(
    connector: dict, built: Built
) -> None:
    """The connector makes one pipeline per Dagster job, named by the job's id (a hash;
    displayName ``__ASSET_JOB``), where OneRing publishes ``onering_dagster.onering`` for the
    code location. The connector makes one task per op, OneRing one per asset
    (``<layer>__<table>``, the Airflow task ids): they agree wherever an op makes one asset;
    an op making several (the Flink job, an Airbyte connection) is one connector task named
    after the op. Both pipelines would sit in service ``onering_dagster`` on one server.
    The one declared job, ``stream_to_silver`` (Silver flights, run by the stream sensor), is
    one more connector pipeline with its one task.
    """
    by_name = {p["display_name"]: p for p in connector["pipelines"]}
    assert sorted(by_name) == ["__ASSET_JOB", "stream_to_silver"]
    assert by_name["stream_to_silver"]["tasks"] == ["silver__flights"]
    pipeline = by_name["__ASSET_JOB"]
    assert re.fullmatch(r"[0-9a-f]{40}", pipeline["name"]), pipeline["name"]
    [dagster] = [p for p in built.document["pipelines"] if p["service"] == "onering_dagster"]
    assert dagster["fqn"] == "onering_dagster.onering"
    graph = build_definitions(
        Settings(profile="local", state_dir=built.state)
    ).resolve_asset_graph()

    def op(task: str) -> str:
        node = graph.get(dg.AssetKey(task.split("__", 1)))
        return node.assets_def.node_def.name

    tasks = [t["name"] for t in dagster["tasks"]]
    assert pipeline["tasks"] == sorted({op(t) for t in tasks})
    assert {t for t in tasks if op(t) == t} == {t for t in pipeline["tasks"] if t in tasks}
