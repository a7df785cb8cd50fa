"""Drive the loopback server with the real ``openmetadata-ingestion`` 2.0.7 client.

Run in the openmetadata env (``envs/openmetadata/.venv/bin/python``), never in the main env:
``python om_client_check.py [all|client|fields]`` prints a JSON report. ``client`` creates and
reads back entities, lineage and a pipeline status against ``OM_CHECK_URL`` with the token in
``OM_CHECK_TOKEN``; ``fields`` lists each 2.0.7 request model's fields and required fields, to
compare with the vendored schemas.
"""

# Runs in the openmetadata env: the main env (and its pyright) has no `metadata` package.
# pyright: reportMissingImports=false

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_SVC = "services.create{0}Service.Create{0}ServiceRequest"
REQUESTS = {
    "api/services/createDatabaseService.json": _SVC.format("Database"),
    "api/services/createStorageService.json": _SVC.format("Storage"),
    "api/services/createPipelineService.json": _SVC.format("Pipeline"),
    "api/services/createMlModelService.json": _SVC.format("MlModel"),
    "api/data/createDatabase.json": "data.createDatabase.CreateDatabaseRequest",
    "api/data/createDatabaseSchema.json": "data.createDatabaseSchema.CreateDatabaseSchemaRequest",
    "api/data/createTable.json": "data.createTable.CreateTableRequest",
    "api/data/createContainer.json": "data.createContainer.CreateContainerRequest",
    "api/data/createPipeline.json": "data.createPipeline.CreatePipelineRequest",
    "api/data/createMlModel.json": "data.createMlModel.CreateMlModelRequest",
    "api/classification/createClassification.json": (
        "classification.createClassification.CreateClassificationRequest"
    ),
    "api/classification/createTag.json": "classification.createTag.CreateTagRequest",
    "api/tests/createTestSuite.json": "tests.createTestSuite.CreateTestSuiteRequest",
    "api/tests/createTestCase.json": "tests.createTestCase.CreateTestCaseRequest",
    "api/tests/createTestDefinition.json": "tests.createTestDefinition.CreateTestDefinitionRequest",
    "api/tests/createTestCaseResult.json": "tests.createTestCaseResult.CreateTestCaseResult",
    "api/lineage/addLineage.json": "lineage.addLineage.AddLineageRequest",
}


def model_fields() -> dict[str, dict[str, list[str]]]:
    """Fields and required fields of each 2.0.7 generated request model, by vendored schema path."""
    import importlib

    out: dict[str, dict[str, list[str]]] = {}
    for schema, dotted in REQUESTS.items():
        module, _, name = dotted.rpartition(".")
        model = getattr(importlib.import_module(f"metadata.generated.schema.api.{module}"), name)
        fields = model.model_fields
        out[schema] = {
            "fields": sorted(fields),
            "required": sorted(k for k, f in fields.items() if f.is_required()),
        }
    return out


def client_round_trip() -> dict[str, Any]:
    """Create service, database, schema, two tables, a pipeline, lineage and read them back."""
    from metadata.generated.schema.api.data.createDatabase import CreateDatabaseRequest
    from metadata.generated.schema.api.data.createDatabaseSchema import (
        CreateDatabaseSchemaRequest,
    )
    from metadata.generated.schema.api.data.createPipeline import CreatePipelineRequest
    from metadata.generated.schema.api.data.createTable import CreateTableRequest
    from metadata.generated.schema.api.lineage.addLineage import AddLineageRequest
    from metadata.generated.schema.api.services.createDatabaseService import (
        CreateDatabaseServiceRequest,
    )
    from metadata.generated.schema.api.services.createPipelineService import (
        CreatePipelineServiceRequest,
    )
    from metadata.generated.schema.entity.data.pipeline import (
        Pipeline,
        PipelineStatus,
        StatusType,
        Task,
    )
    from metadata.generated.schema.entity.data.table import Column, DataType, Table
    from metadata.generated.schema.entity.services.connections.metadata import (
        openMetadataConnection,
    )
    from metadata.generated.schema.entity.services.databaseService import (
        DatabaseServiceType,
    )
    from metadata.generated.schema.entity.services.pipelineService import (
        PipelineServiceType,
    )
    from metadata.generated.schema.security.client.openMetadataJWTClientConfig import (
        OpenMetadataJWTClientConfig,
    )
    from metadata.generated.schema.type.entityLineage import (
        ColumnLineage,
        EntitiesEdge,
        LineageDetails,
    )
    from metadata.generated.schema.type.entityReference import EntityReference
    from metadata.ingestion.ometa.ometa_api import OpenMetadata

    config = openMetadataConnection.OpenMetadataConnection.model_validate(
        {
            "hostPort": os.environ["OM_CHECK_URL"],
            "authProvider": "openmetadata",
            "securityConfig": OpenMetadataJWTClientConfig(jwtToken=os.environ["OM_CHECK_TOKEN"]),
        }
    )
    om = OpenMetadata(config)
    om.create_or_update(
        CreateDatabaseServiceRequest(
            name="onering_clickhouse", serviceType=DatabaseServiceType.Clickhouse
        )
    )
    om.create_or_update(CreateDatabaseRequest(name="clickhouse", service="onering_clickhouse"))
    om.create_or_update(
        CreateDatabaseSchemaRequest(name="silver", database="onering_clickhouse.clickhouse")
    )
    schema = "onering_clickhouse.clickhouse.silver"
    cols = [
        Column(name="carrier", dataType=DataType.STRING),
        Column(name="dep_delay", dataType=DataType.INT),
    ]
    first = om.create_or_update(
        CreateTableRequest(name="flights", databaseSchema=schema, columns=cols, sourceHash="h1")
    )
    again = om.create_or_update(
        CreateTableRequest(name="flights", databaseSchema=schema, columns=cols, sourceHash="h1")
    )
    summary = om.create_or_update(
        CreateTableRequest(name="carrier_summary", databaseSchema=schema, columns=cols[:1])
    )
    om.create_or_update(
        CreatePipelineServiceRequest(
            name="onering_dagster", serviceType=PipelineServiceType.Dagster
        )
    )
    pipeline = om.create_or_update(
        CreatePipelineRequest(
            name="onering", service="onering_dagster", tasks=[Task(name="silver__carrier_summary")]
        )
    )
    result = om.add_lineage(
        AddLineageRequest(
            edge=EntitiesEdge(
                fromEntity=EntityReference(id=first.id, type="table"),
                toEntity=EntityReference(id=summary.id, type="table"),
                lineageDetails=LineageDetails(
                    pipeline=EntityReference(id=pipeline.id, type="pipeline"),
                    sqlQuery="select carrier from flights",
                    columnsLineage=[
                        ColumnLineage(
                            fromColumns=[f"{schema}.flights.carrier"],
                            toColumn=f"{schema}.carrier_summary.carrier",
                        )
                    ],
                ),
            )
        )
    )
    now = int(time.time() * 1000)
    om.add_pipeline_status(
        "onering_dagster.onering",
        PipelineStatus(timestamp=now, executionStatus=StatusType.Successful, executionId="r1"),
    )
    table = om.get_by_name(Table, f"{schema}.flights", fields=["columns", "tags"])
    lineage = om.get_lineage_by_name(Table, f"{schema}.carrier_summary", up_depth=1, down_depth=1)
    statuses = om.list_pipeline_statuses("onering_dagster.onering", now - 1000, now + 1000)
    read_pipeline = om.get_by_name(
        Pipeline, "onering_dagster.onering", fields=["tasks", "pipelineStatus"]
    )
    return {
        "versions": [first.version.root, again.version.root],
        "add_lineage_error": result.get("error"),
        "table_fqn": table.fullyQualifiedName.root if table else None,
        "column_fqns": [c.fullyQualifiedName.root for c in table.columns] if table else [],
        "upstream": lineage["upstreamEdges"] if lineage else None,
        "nodes": [n["fullyQualifiedName"] for n in lineage["nodes"]] if lineage else [],
        "statuses": [s.executionId for s in statuses],
        "pipeline_status": read_pipeline.pipelineStatus.executionStatus.value
        if read_pipeline
        else None,
        "task_fqns": [t.fullyQualifiedName for t in read_pipeline.tasks or []]
        if read_pipeline
        else [],
        "missing": om.get_by_name(Table, f"{schema}.nope") is None,
        "ml": ml_round_trip(om, first),
    }


def ml_round_trip(om: Any, table: Any) -> dict[str, Any]:
    """An ML model service and a model whose feature reads ``table``; its lineage read back."""
    from metadata.generated.schema.api.data.createMlModel import CreateMlModelRequest
    from metadata.generated.schema.api.services.createMlModelService import (
        CreateMlModelServiceRequest,
    )
    from metadata.generated.schema.entity.data.mlmodel import (
        FeatureSource,
        FeatureSourceDataType,
        FeatureType,
        MlFeature,
        MlModel,
    )
    from metadata.generated.schema.entity.services.mlmodelService import MlModelServiceType
    from metadata.generated.schema.type.entityReference import EntityReference

    om.create_or_update(
        CreateMlModelServiceRequest(name="onering_mlflow", serviceType=MlModelServiceType.Mlflow)
    )
    source = EntityReference(
        id=table.id, type="table", fullyQualifiedName=table.fullyQualifiedName.root
    )
    model = om.create_or_update(
        CreateMlModelRequest(
            name="flight_late_arrival",
            service="onering_mlflow",
            algorithm="LogisticRegression",
            target="late",
            mlFeatures=[
                MlFeature(
                    name="carrier",
                    dataType=FeatureType.categorical,
                    featureSources=[
                        FeatureSource(
                            name="carrier",
                            dataType=FeatureSourceDataType.string,
                            dataSource=source,
                        )
                    ],
                )
            ],
        )
    )
    read = om.get_by_name(MlModel, "onering_mlflow.flight_late_arrival")
    lineage = om.get_lineage_by_name(
        MlModel, "onering_mlflow.flight_late_arrival", up_depth=1, down_depth=0
    )
    feature = read.mlFeatures[0] if read and read.mlFeatures else None
    return {
        "model_fqn": model.fullyQualifiedName.root,
        "service_type": read.serviceType.value if read and read.serviceType else None,
        "feature_fqn": feature.fullyQualifiedName.root if feature else None,
        "source_fqn": feature.featureSources[0].fullyQualifiedName.root
        if feature and feature.featureSources
        else None,
        "upstream": lineage["upstreamEdges"] if lineage else None,
    }


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "all"
    report: dict[str, Any] = {}
    if mode in ("fields", "all"):
        report["fields"] = model_fields()
    if mode in ("client", "all"):
        report["client"] = client_round_trip()
    json.dump(report, sys.stdout, default=str)
