"""The catalog's fixed entities as create requests.

The services (storage, database, pipeline and ML model services; the document's Feast
service has no OpenMetadata service type and is not one), the classification ``OneRing``
with its tags, and the custom test definition every OneRing check is a case of.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onering_catalog.build import (
    CLASSIFICATION,
    LAYERS,
    TEST_DEFINITION,
    make,
    tag_dicts,
    tags_of,
)

# The tags of the layers whose name alone says too little.
LAYER_TEXT = {
    "features": "OneRing's feature views and their offline rows.",
    "ml": "OneRing's ML assets: training set, model and drift reports.",
    "stream": (
        "OneRing's streaming and Flink assets: flight events from Pulsar into Bronze, and the "
        "PyFlink job's hourly departures and delay streaks."
    ),
    "airbyte": "OneRing's Airbyte connections: each declared stream, read by PyAirbyte.",
}
# Where each store and orchestrator lives in compose. No credentials: the catalog only
# displays these (OneRing pushes metadata; OpenMetadata never connects with them).
HOSTS = {
    "S3": "http://minio:9000",
    "Clickhouse": "clickhouse:8123",
    "Postgres": "postgres:5432",
    "Dagster": "http://dagster-webserver:3000",
    "Airflow": "http://airflow-apiserver:8080",
    "Mlflow": "http://mlflow:5000",
}
SERVICE_PATH = {
    "storage": "services/storageServices",
    "database": "services/databaseServices",
    "pipeline": "services/pipelineServices",
    "mlmodel": "services/mlmodelServices",
}


def classification_requests() -> list[tuple[str, str, Callable[[], Any]]]:
    """``(path, fqn, build the request)`` for the classification and its tags, parents first.

    The requests are built only when called: a publish that finds them all on the server
    builds (and imports) no model.
    """
    descriptions = {
        "managed": "Published by OneRing from its asset graph: OneRing updates and removes it.",
        **{layer: LAYER_TEXT.get(layer, f"OneRing's {layer.title()} layer.") for layer in LAYERS},
    }
    out: list[tuple[str, str, Callable[[], Any]]] = [
        ("/classifications", CLASSIFICATION, _classification_request)
    ]
    for name, text in descriptions.items():
        out.append(
            (
                "/tags",
                f"{CLASSIFICATION}.{name}",
                lambda name=name, text=text: _tag_request(name, text),
            )
        )
    return out


def _classification_request() -> Any:
    from metadata.generated.schema.api.classification.createClassification import (
        CreateClassificationRequest,
    )

    return make(
        CreateClassificationRequest,
        name=CLASSIFICATION,
        description="Tags OneRing sets on the catalog entities it publishes.",
        mutuallyExclusive=False,
    )


def _tag_request(name: str, text: str) -> Any:
    from metadata.generated.schema.api.classification.createTag import CreateTagRequest

    return make(CreateTagRequest, classification=CLASSIFICATION, name=name, description=text)


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
    from metadata.generated.schema.entity.services.connections.mlmodel import mlflowConnection
    from metadata.generated.schema.entity.services.connections.pipeline import (
        airflowConnection,
        backendConnection,
        dagsterConnection,
    )
    from metadata.generated.schema.entity.services.connections.storage import s3Connection
    from metadata.generated.schema.entity.services.databaseService import DatabaseConnection
    from metadata.generated.schema.entity.services.mlmodelService import MlModelConnection
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
        # The tracking server is the registry too (its own Postgres and MinIO behind it).
        "Mlflow": lambda: make(
            mlflowConnection.MlflowConnection, trackingUri=host, registryUri=host
        ),
    }
    wrapper = {
        "storage": StorageConnection,
        "database": DatabaseConnection,
        "mlmodel": MlModelConnection,
    }.get(kind, PipelineConnection)
    return make(wrapper, config=configs[stype]())


def _description(service: dict[str, Any]) -> str:
    layer = service.get("layer")
    if layer:
        return f"OneRing's {layer.title()} layer."
    if service["kind"] == "mlmodel":
        return f"OneRing's {service['type']} model registry: the models its assets train."
    return f"OneRing's {service['type']} runs."


def service_path(service: dict[str, Any]) -> str | None:
    """The collection path of one document service (``/services/databaseServices``).

    ``None`` for a kind OpenMetadata has no service for (the Feast feature store).
    """
    path = SERVICE_PATH.get(service["kind"])
    return f"/{path}" if path else None


def service_fields(service: dict[str, Any]) -> dict[str, Any]:
    """The fields of a service's request OneRing compares (not its connection), as JSON."""
    return {
        "name": service["name"],
        "serviceType": service["type"],
        "description": _description(service),
        "tags": tag_dicts(service.get("layer")),
    }


def service_request(service: dict[str, Any]) -> Any:
    """The create request of one document service, with its connection."""
    from metadata.generated.schema.api.services.createDatabaseService import (
        CreateDatabaseServiceRequest,
    )
    from metadata.generated.schema.api.services.createMlModelService import (
        CreateMlModelServiceRequest,
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
        "mlmodel": CreateMlModelServiceRequest,
    }[kind]
    return make(
        create,
        name=service["name"],
        serviceType=stype,
        description=_description(service),
        connection=_connection(kind, stype),
        tags=tags_of(service.get("layer")),
    )
