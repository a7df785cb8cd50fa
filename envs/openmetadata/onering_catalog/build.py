"""The lineage document as OpenMetadata create requests (``openmetadata-ingestion``'s models).

Pure functions: no HTTP here. Names follow the shared conventions (services
``onering_lake``/``onering_clickhouse``/``onering_postgres``/``onering_dagster``/
``onering_airflow``/``onering_mlflow``; the lake's files as containers under a root
container per folder: ``onering_lake.bronze``, ``onering_lake.features``, ``onering_lake.ml``).
Every entity OneRing manages carries the tag ``OneRing.managed``; tables, containers, ML
models, databases, schemas and pipelines carry ``sourceHash`` = ``fingerprint`` of their part
of the document.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from onering_catalog.datatypes import CLICKHOUSE, POSTGRES, to_column

CLASSIFICATION = "OneRing"
MANAGED_TAG = f"{CLASSIFICATION}.managed"
LAYERS = ("bronze", "silver", "gold", "stream", "airbyte", "features", "ml")
TEST_DEFINITION = "oneringAssetCheck"
LAKE = "onering_lake"
LAKE_ROOTS = {  # the lake's top folders (a document container's ``schema``) and what they hold
    "bronze": "OneRing's Bronze layer: files as landed, one folder per table.",
    "features": "OneRing's feature rows: each Feast view's offline source, one folder per view.",
    "ml": "OneRing's ML data: the model's training set and the monthly drift reports.",
    "stream": (
        "OneRing's stream folder: one ledger entry per batch consumed from Pulsar, and the "
        "Flink job's results."
    ),
    "airbyte": "OneRing's Airbyte streams: one folder per declared connection's stream.",
}
CONTAINER_FORMATS = {"zip", "gz", "zstd", "csv", "tsv", "json", "parquet", "avro"}


def make(model: Any, **fields: Any) -> Any:
    """A generated model from plain values, validated by pydantic.

    Strings become its ``FullyQualifiedEntityName``/``Uuid``/``Markdown`` roots.
    """
    return model.model_validate(fields)


def fingerprint(part: Any) -> str:
    """``onering_assets.lineage.document.fingerprint``: 32 hex of the canonical JSON's sha256."""
    text = json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def tag_label(fqn: str) -> Any:
    """A classification tag label (``OneRing.managed``, ``OneRing.silver``)."""
    from metadata.generated.schema.type.tagLabel import (
        LabelType,
        State,
        TagLabel,
        TagSource,
    )

    return make(
        TagLabel,
        tagFQN=fqn,
        source=TagSource.Classification,
        labelType=LabelType.Automated,
        state=State.Confirmed,
    )


def tags_of(layer: str | None) -> list[Any]:
    """``OneRing.managed`` plus the layer tag."""
    names = [MANAGED_TAG] + ([f"{CLASSIFICATION}.{layer}"] if layer in LAYERS else [])
    return [tag_label(n) for n in names]


def quote_name(name: str) -> str:
    """OpenMetadata's ``FullyQualifiedName.quoteName``: quote a part holding a dot."""
    return f'"{name}"' if "." in name else name


def column_fqn(entity_fqn: str, column: str) -> str:
    """A column's FQN: the entity's FQN plus the quoted column name."""
    return f"{entity_fqn}.{quote_name(column)}"


def compact(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` without the ``None`` values (what a request dumped without nulls holds)."""
    return {k: v for k, v in fields.items() if v is not None}


def database_fields(service: str, database: str) -> dict[str, Any]:
    """A database of a database service, as the plain JSON of its create request."""
    part = {"service": service, "database": database}
    return {
        "name": database,
        "service": service,
        "description": f"OneRing's {database} database.",
        "tags": tag_dicts(None),
        "sourceHash": fingerprint(part),
    }


def database_request(fields: dict[str, Any]) -> Any:
    """``database_fields`` as a ``CreateDatabaseRequest``."""
    from metadata.generated.schema.api.data.createDatabase import CreateDatabaseRequest

    return CreateDatabaseRequest.model_validate(compact(fields))


def schema_fields(service: str, database: str, schema: str, layer: str) -> dict[str, Any]:
    """A schema of a database, as the plain JSON of its create request."""
    part = {"service": service, "database": database, "schema": schema, "layer": layer}
    return {
        "name": schema,
        "database": f"{service}.{database}",
        "description": f"OneRing's {layer.title()} tables.",
        "tags": tag_dicts(layer),
        "sourceHash": fingerprint(part),
    }


def schema_request(fields: dict[str, Any]) -> Any:
    """``schema_fields`` as a ``CreateDatabaseSchemaRequest``."""
    from metadata.generated.schema.api.data.createDatabaseSchema import (
        CreateDatabaseSchemaRequest,
    )

    return CreateDatabaseSchemaRequest.model_validate(compact(fields))


def lake_roots(entities: list[dict[str, Any]]) -> list[str]:
    """The root containers' names: the lake folders of the document's containers."""
    return sorted({e["schema"] for e in entities if e["entity"] == "container"})


def lake_root_fqn(root: str) -> str:
    """``onering_lake.<root>``."""
    return f"{LAKE}.{quote_name(root)}"


def lake_root_fields(root: str) -> dict[str, Any]:
    """The parent container ``onering_lake.<root>``, as the plain JSON of its request."""
    part = {"service": LAKE, "name": root}
    return {
        "name": root,
        "service": LAKE,
        "description": LAKE_ROOTS.get(root, f"OneRing's {root} folder in the lake."),
        "tags": tag_dicts(root),
        "sourceHash": fingerprint(part),
    }


def lake_root_request(fields: dict[str, Any]) -> Any:
    """``lake_root_fields`` as a ``CreateContainerRequest``."""
    from metadata.generated.schema.api.data.createContainer import CreateContainerRequest

    return CreateContainerRequest.model_validate(compact(fields))


def _column_dicts(entity: dict[str, Any], dialect: str) -> list[dict[str, Any]]:
    return [
        {
            k: v
            for k, v in to_column(c["name"], c["type"], c.get("description", ""), dialect).items()
            if v is not None
        }
        for c in entity["columns"]
    ]


def tag_dicts(layer: str | None) -> list[dict[str, str]]:
    """``tags_of`` as plain JSON (what a request carries)."""
    names = [MANAGED_TAG] + ([f"{CLASSIFICATION}.{layer}"] if layer in LAYERS else [])
    return [
        {"tagFQN": n, "source": "Classification", "labelType": "Automated", "state": "Confirmed"}
        for n in names
    ]


def entity_fields(
    entity: dict[str, Any], owners: list[dict[str, str]], parent_id: str | None
) -> dict[str, Any]:
    """The create request of one document entity as plain JSON.

    Compared with the server's JSON as it is (no model built: building 1,000 pydantic
    requests costs seconds); ``entity_request`` validates it into the generated model.
    """
    fields: dict[str, Any] = {
        "name": entity["name"],
        "description": entity.get("description") or None,
        "owners": owners or None,
        "tags": tag_dicts(entity.get("layer")),
        "sourceHash": fingerprint(entity),
    }
    if entity["entity"] == "container":
        formats = [k for k in entity.get("kinds", []) if k in CONTAINER_FORMATS]
        columns = _column_dicts(entity, CLICKHOUSE)
        model = {"isPartitioned": entity.get("partitions") is not None, "columns": columns}
        return {
            **fields,
            "service": entity["service"],
            "parent": {"id": parent_id, "type": "container"} if parent_id else None,
            # A container of files without a table shape (the drift reports) has no data model.
            "dataModel": model if columns else None,
            "fileFormats": formats or None,
        }
    dialect = POSTGRES if entity["layer"] == "gold" else CLICKHOUSE
    return {
        **fields,
        "databaseSchema": f"{entity['service']}.{entity['database']}.{entity['schema']}",
        "columns": _column_dicts(entity, dialect),
    }


def entity_request(fields: dict[str, Any]) -> Any:
    """``entity_fields`` as a ``CreateContainerRequest`` or ``CreateTableRequest``."""
    from metadata.generated.schema.api.data.createContainer import CreateContainerRequest
    from metadata.generated.schema.api.data.createTable import CreateTableRequest

    model = CreateTableRequest if "databaseSchema" in fields else CreateContainerRequest
    return model.model_validate({k: v for k, v in fields.items() if v is not None})


def pipeline_fields(pipeline: dict[str, Any]) -> dict[str, Any]:
    """A pipeline (the Dagster code location or one Airflow DAG) with its tasks, as JSON."""
    tasks = [
        compact(
            {
                "name": t["name"],
                "description": "Materializes " + ", ".join(t["assets"]) if t["assets"] else None,
                "downstreamTasks": sorted(t["downstream"]) or None,
            }
        )
        for t in pipeline["tasks"]
    ]
    schedule = pipeline.get("schedule")
    cron_like = isinstance(schedule, str) and (schedule.startswith("@") or schedule.count(" ") == 4)
    return compact(
        {
            "name": pipeline["name"],
            "service": pipeline["service"],
            "description": pipeline.get("description") or None,
            "tasks": tasks,
            "scheduleInterval": schedule if cron_like else None,
            "tags": tag_dicts(None),
            "sourceHash": fingerprint(pipeline),
        }
    )


def pipeline_request(fields: dict[str, Any]) -> Any:
    """``pipeline_fields`` as a ``CreatePipelineRequest``."""
    from metadata.generated.schema.api.data.createPipeline import CreatePipelineRequest

    return CreatePipelineRequest.model_validate(fields)


def entity_link(table_fqn: str) -> str:
    """The ``<#E::table::fqn>`` link a table's test cases name."""
    return f"<#E::table::{table_fqn}>"


def suite_request(table_fqn: str) -> Any:
    """The table's basic ("executable") test suite."""
    from metadata.generated.schema.api.tests.createTestSuite import CreateTestSuiteRequest

    return make(
        CreateTestSuiteRequest,
        name=f"{table_fqn}.testSuite",
        description="OneRing's checks of this table.",
        basicEntityReference=table_fqn,
    )


def test_case_fields(table_fqn: str, check: dict[str, Any]) -> dict[str, Any]:
    """One check of a table as the plain JSON of a ``oneringAssetCheck`` test case."""
    return {
        "name": check["name"],
        "description": check.get("description") or None,
        "testDefinition": TEST_DEFINITION,
        "entityLink": entity_link(table_fqn),
        "parameterValues": [{"name": "blocking", "value": str(bool(check["blocking"])).lower()}],
        "tags": tag_dicts(None),
    }


def test_case_request(fields: dict[str, Any]) -> Any:
    """``test_case_fields`` as a ``CreateTestCaseRequest``."""
    from metadata.generated.schema.api.tests.createTestCase import CreateTestCaseRequest

    return CreateTestCaseRequest.model_validate({k: v for k, v in fields.items() if v is not None})


def edge_details(
    edge: dict[str, Any], source_fqn: str, target_fqn: str, pipeline_id: str | None
) -> dict[str, Any]:
    """The ``lineageDetails`` of one catalog edge (``edges.catalog_edges``) as plain JSON.

    OpenMetadata keeps one pipeline per edge: the Dagster code location's (every edge has
    one); the description names every pipeline task that produces the edge, then the Feast
    views it runs through and the model features it feeds, if any.
    """
    columns = [
        {
            "fromColumns": [column_fqn(source_fqn, c) for c in pair["from"]],
            "toColumn": column_fqn(target_fqn, pair["to"]),
        }
        for pair in edge["columns"]
    ]
    producers = ", ".join(f"{p['pipeline']}/{p['task']}" for p in edge.get("pipelines", []))
    notes = [f"Produced by {producers}."] if producers else []
    if edge.get("via"):
        notes.append(f"Through the Feast view {', '.join(edge['via'])}.")
    if edge.get("features"):
        notes.append(f"Source of the model's features {', '.join(edge['features'])}.")
    details = {
        "sqlQuery": edge.get("sql") or None,
        "columnsLineage": columns or None,
        "pipeline": {"id": pipeline_id, "type": "pipeline"} if pipeline_id else None,
        "description": " ".join(notes) or None,
        # Always pipeline lineage (OneRing's code draws it), even without the pipeline entity:
        # with the description, it marks the edge as OneRing's (``lineage.is_ours``).
        "source": "PipelineLineage",
    }
    return {k: v for k, v in details.items() if v is not None}


def edge_request(details: dict[str, Any], source: tuple[str, str], target: tuple[str, str]) -> Any:
    """``AddLineageRequest`` of ``edge_details``; ``source``/``target`` are (type, id)."""
    from metadata.generated.schema.api.lineage.addLineage import AddLineageRequest

    return AddLineageRequest.model_validate(
        {
            "edge": {
                "fromEntity": {"id": source[1], "type": source[0]},
                "toEntity": {"id": target[1], "type": target[0]},
                "lineageDetails": details,
            }
        }
    )
