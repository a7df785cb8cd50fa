# pyright: reportMissingImports=false
"""Run OpenMetadata's own Dagster connector against a Dagster webserver; print what it names.

Runs in the openmetadata environment only (``envs/openmetadata/.venv/bin/python``), started
by ``tests/catalog/test_dagster_connector.py``::

    dagster_connector_probe.py WORKFLOW_YAML DAGSTER_URL CATALOG_JSON

The connector (``DagsterSource``) is built from the ``source`` section of ``WORKFLOW_YAML``
with its host replaced by ``DAGSTER_URL``; everything it asks the Dagster webserver goes
through its own ``DagsterClient`` and GraphQL queries. What it asks OpenMetadata goes to
:class:`RecordingCatalog`, a stand-in for the ``OpenMetadata`` client that answers as a server
holding the entities listed in ``CATALOG_JSON`` (``[{"fqn": …, "entity": "table"|"container"}]``,
the entities OneRing publishes) and records every lookup. No OpenMetadata server can run here.

Prints one JSON object: the pipelines the connector would create, each asset's resolution
(the labels it read from the latest materialization, the FQNs it looked up, in order, and the
one it resolved), and the lineage edges it would add (as ``[from FQN, to FQN]``).
"""

from __future__ import annotations

import fnmatch
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml
from metadata.generated.schema.entity.data.pipeline import Pipeline
from metadata.generated.schema.entity.data.table import Table
from metadata.generated.schema.entity.services.connections.testConnectionDefinition import (
    TestConnectionDefinition,
)
from metadata.ingestion.source.pipeline.dagster.metadata import DagsterSource


def _id(fqn: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, fqn))


class RecordingCatalog:
    """Answers the connector's lookups as a server holding ``catalog``; records each one.

    Tables are found by ``get_by_name`` and by the search index (``es_search_from_fqn``,
    whose FQN pattern has ``*`` for the parts the connector does not know). Containers are
    not tables: a Table lookup never returns one, as on a real server.
    """

    def __init__(self, catalog: list[dict[str, str]]) -> None:
        self.tables = sorted(e["fqn"] for e in catalog if e["entity"] == "table")
        self.lookups: list[dict[str, str]] = []

    def _table(self, fqn: str) -> Table:
        return Table.model_validate(
            {
                "id": _id(fqn),
                "name": fqn.rsplit(".", 1)[-1],
                "fullyQualifiedName": fqn,
                "columns": [],
            }
        )

    def get_by_name(self, entity: type, fqn: str, **_: Any) -> Any:
        self.lookups.append({"call": "get_by_name", "entity": entity.__name__, "fqn": fqn})
        if entity is TestConnectionDefinition:
            # The server's definition for Dagster: one step, run against the real webserver.
            return TestConnectionDefinition.model_validate(
                {
                    "name": "Dagster",
                    "steps": [
                        {"name": "GetPipelines", "description": "List pipelines", "mandatory": True}
                    ],
                }
            )
        if entity is Pipeline:
            service = {"id": _id(fqn.split(".")[0]), "type": "pipelineService"}
            name = fqn.split(".", 1)[1]
            return Pipeline.model_validate(
                {"id": _id(fqn), "name": name, "fullyQualifiedName": fqn, "service": service}
            )
        if entity is Table and fqn in self.tables:
            return self._table(fqn)
        return None

    def es_search_from_fqn(self, entity_type: type, fqn_search_string: str, **_: Any) -> Any:
        self.lookups.append(
            {"call": "es_search_from_fqn", "entity": entity_type.__name__, "fqn": fqn_search_string}
        )
        if entity_type is not Table:
            return None
        found = [f for f in self.tables if fnmatch.fnmatchcase(f, fqn_search_string)]
        return [self._table(f) for f in found] or None


def probe(workflow: Path, url: str, catalog: list[dict[str, str]]) -> dict[str, Any]:
    """What the connector names for the webserver at ``url``, configured by ``workflow``."""
    source_config = yaml.safe_load(workflow.read_text())["source"]
    source_config["serviceConnection"]["config"]["host"] = url
    recorder = RecordingCatalog(catalog)
    source = DagsterSource.create(source_config, recorder)
    context = source.context.get()
    context.pipeline_service = source_config["serviceName"]
    services = source.get_db_service_names() or ["*"]
    pipelines: list[dict[str, Any]] = []
    assets: dict[str, dict[str, Any]] = {}
    edges: list[list[str]] = []
    for details in source.get_pipelines_list():
        requests = [e.right for e in source.yield_pipeline(details) if e.right is not None]
        for request in requests:
            context.pipeline = request.name.root
            tasks = sorted(t.name for t in request.tasks or [])
            pipelines.append(
                {"name": request.name.root, "display_name": request.displayName, "tasks": tasks}
            )
        for node in source.client.get_assets(context.repository_name, context.repository_location):
            if not source._is_asset_in_pipeline(node, details.name):
                continue
            before = len(recorder.lookups)
            result = source._resolve_asset_to_table(node, services)
            assets["/".join(node.assetKey.path)] = {
                "labels": source._parse_asset_from_materialization(node),
                "resolved": result.table_fqn,
                "lookups": recorder.lookups[before:],
            }
        by_id = {_id(f): f for f in recorder.tables}
        for either in source.yield_pipeline_lineage_details(details):
            if either.left is not None:
                raise RuntimeError(either.left.error)
            edge = either.right.edge
            edges.append([by_id[str(edge.fromEntity.id.root)], by_id[str(edge.toEntity.id.root)]])
    return {"pipelines": pipelines, "assets": assets, "edges": sorted(edges)}


def main() -> None:
    workflow, url, catalog = sys.argv[1:4]
    result = probe(Path(workflow), url, json.loads(Path(catalog).read_text()))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
