"""The catalog's fixed entities as create requests.

The five services, the classification ``OneRing`` with its tags, and the custom test
definition every OneRing check is a case of.
"""

from __future__ import annotations

from typing import Any

from onering_catalog.build import CLASSIFICATION, LAYERS, TEST_DEFINITION, make, tags_of

# Where each store and orchestrator lives in compose. No credentials: the catalog only
# displays these (OneRing pushes metadata; OpenMetadata never connects with them).
HOSTS = {
    "S3": "http://minio:9000",
    "Clickhouse": "clickhouse:8123",
    "Postgres": "postgres:5432",
    "Dagster": "http://dagster-webserver:3000",
    "Airflow": "http://airflow-apiserver:8080",
}
SERVICE_PATH = {
    "storage": "services/storageServices",
    "database": "services/databaseServices",
    "pipeline": "services/pipelineServices",
}


def classification_requests() -> list[tuple[str, str, Any]]:
    """``(path, fqn, request)`` for the classification and its tags, parents first."""
    from metadata.generated.schema.api.classification.createClassification import (
        CreateClassificationRequest,
    )
    from metadata.generated.schema.api.classification.createTag import CreateTagRequest

    out: list[tuple[str, str, Any]] = [
        (
            "/classifications",
            CLASSIFICATION,
            make(
                CreateClassificationRequest,
                name=CLASSIFICATION,
                description="Tags OneRing sets on the catalog entities it publishes.",
                mutuallyExclusive=False,
            ),
        )
    ]
    descriptions = {
        "managed": "Published by OneRing from its asset graph: OneRing updates and removes it.",
        **{layer: f"OneRing's {layer.title()} layer." for layer in LAYERS},
    }
    for name, text in descriptions.items():
        out.append(
            (
                "/tags",
                f"{CLASSIFICATION}.{name}",
                make(CreateTagRequest, classification=CLASSIFICATION, name=name, description=text),
            )
        )
    return out


def test_definition_request() -> Any:
    """The custom test definition every OneRing check is a case of."""
    from metadata.generated.schema.api.tests.createTestDefinition import (
        CreateTestDefinitionRequest,
    )
    from metadata.generated.schema.tests.testDefinition import (
        EntityType,
        TestCaseParameterDefinition,
        TestDataType,
        TestPlatform,
    )

    return make(
        CreateTestDefinitionRequest,
        name=TEST_DEFINITION,
        displayName="OneRing asset check",
        description=(
            "A Dagster asset check OneRing runs with the asset (Great Expectations suites, "
            "schema, reconciliation and reject-rate checks). Results come from OneRing's runs."
        ),
        entityType=EntityType.TABLE,
        testPlatforms=[TestPlatform.Other],
        parameterDefinition=[
            make(
                TestCaseParameterDefinition,
                name="blocking",
                displayName="Blocking",
                dataType=TestDataType.BOOLEAN,
                description="A failed blocking check stops the asset from being published.",
                required=True,
            )
        ],
    )


def _connection(kind: str, stype: str) -> Any:
    """A minimal valid connection config without secrets (Airflow: the backend connection)."""
    from metadata.generated.schema.entity.services.connections.database import (
        clickhouseConnection,
        postgresConnection,
    )
    from metadata.generated.schema.entity.services.connections.pipeline import (
        airflowConnection,
        backendConnection,
        dagsterConnection,
    )
    from metadata.generated.schema.entity.services.connections.storage import s3Connection
    from metadata.generated.schema.entity.services.databaseService import DatabaseConnection
    from metadata.generated.schema.entity.services.pipelineService import PipelineConnection
    from metadata.generated.schema.entity.services.storageService import StorageConnection
    from metadata.generated.schema.security.credentials.awsCredentials import AWSCredentials

    host = HOSTS[stype]
    configs: dict[str, Any] = {
        "S3": lambda: make(
            s3Connection.S3Connection,
            awsConfig=make(AWSCredentials, awsRegion="us-east-1", endPointURL=host),
        ),
        "Clickhouse": lambda: make(
            clickhouseConnection.ClickhouseConnection, hostPort=host, username="onering"
        ),
        "Postgres": lambda: make(
            postgresConnection.PostgresConnection,
            hostPort=host,
            username="onering",
            database="onering",
        ),
        "Dagster": lambda: make(dagsterConnection.DagsterConnection, host=host),
        "Airflow": lambda: make(
            airflowConnection.AirflowConnection,
            hostPort=host,
            connection=backendConnection.BackendConnection(),
        ),
    }
    wrapper = {"storage": StorageConnection, "database": DatabaseConnection}.get(
        kind, PipelineConnection
    )
    return make(wrapper, config=configs[stype]())


def service_request(service: dict[str, Any]) -> tuple[str, Any]:
    """``(path, request)`` of one document service."""
    from metadata.generated.schema.api.services.createDatabaseService import (
        CreateDatabaseServiceRequest,
    )
    from metadata.generated.schema.api.services.createPipelineService import (
        CreatePipelineServiceRequest,
    )
    from metadata.generated.schema.api.services.createStorageService import (
        CreateStorageServiceRequest,
    )

    kind, stype = service["kind"], service["type"]
    create = {
        "storage": CreateStorageServiceRequest,
        "database": CreateDatabaseServiceRequest,
        "pipeline": CreatePipelineServiceRequest,
    }[kind]
    layer = service.get("layer")
    description = f"OneRing's {layer.title()} layer." if layer else f"OneRing's {stype} runs."
    request = make(
        create,
        name=service["name"],
        serviceType=stype,
        description=description,
        connection=_connection(kind, stype),
        tags=tags_of(layer),
    )
    return f"/{SERVICE_PATH[kind]}", request
