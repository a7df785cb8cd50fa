"""Entity kinds, FQN rules and errors of the loopback OpenMetadata server, as OpenMetadata has them.

Sources: ``FullyQualifiedName.java`` (quoting), each ``*Resource.java``'s ``FIELDS`` (which
``?fields=`` a GET accepts), ``CatalogExceptionMessage.java`` (error sentences), ``ErrorMessage``
(``{"code": ..., "message": ...}`` bodies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTED = re.compile(r'^"([^"]+)"$')


class ApiError(Exception):
    """An HTTP error answered with OpenMetadata's ``ErrorMessage`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, object]:
        """The JSON body OpenMetadata answers: ``{"code": status, "message": ...}``."""
        return {"code": self.status, "message": self.message}


def not_found(entity_type: str, key: str) -> ApiError:
    """``EntityNotFoundException``: ``"<type> instance for <id or fqn> not found"`` (404)."""
    return ApiError(404, f"{entity_type} instance for {key} not found")


def bad_request(message: str) -> ApiError:
    """A 400 with the given sentence."""
    return ApiError(400, message)


def quote_name(name: str) -> str:
    """``FullyQualifiedName.quoteName``: quote a name part containing a dot, keep others bare.

    Raises:
        ApiError: 400 for a name with a double quote inside it, as OpenMetadata rejects it.
    """
    match = _QUOTED.match(name)
    if match:
        return name if "." in match.group(1) else match.group(1)
    if '"' in name:
        raise bad_request(f"Invalid name {name}")
    return f'"{name}"' if "." in name else name


def build_fqn(*parts: str) -> str:
    """``FullyQualifiedName.build``: join quoted name parts with dots."""
    return ".".join(quote_name(part) for part in parts)


def add_fqn(prefix: str, name: str) -> str:
    """``FullyQualifiedName.add``: append one quoted name part to an FQN."""
    return f"{prefix}.{quote_name(name)}"


def split_fqn(fqn: str) -> list[str]:
    """``FullyQualifiedName.split``: the unquoted name parts of an FQN."""
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    for char in fqn:
        if char == '"':
            in_quotes = not in_quotes
        elif char == "." and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if in_quotes:
        raise bad_request(f"Invalid name {fqn}")
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class Kind:
    """One entity collection of the REST API.

    Attributes:
        collection: Path under ``/v1`` (``"tables"``, ``"services/databaseServices"``).
        type: OpenMetadata's entity type name (``"table"``).
        schema: Vendored create-request schema, or None for read-only kinds.
        parent_field: Request field naming the parent by FQN (``"databaseSchema"``).
        parent_type: Entity type that field must name.
        fields: Names a GET's ``?fields=`` accepts (the resource's ``FIELDS``).
        gated: Attributes answered only when asked for in ``?fields=``.
    """

    collection: str
    type: str
    schema: str | None
    parent_field: str | None
    parent_type: str | None
    fields: frozenset[str]
    gated: frozenset[str]


def _kind(
    collection: str,
    entity_type: str,
    schema: str | None,
    parent: tuple[str, str] | None,
    fields: str,
    ungated: str = "",
) -> Kind:
    names = frozenset(fields.split(","))
    return Kind(
        collection=collection,
        type=entity_type,
        schema=schema,
        parent_field=parent[0] if parent else None,
        parent_type=parent[1] if parent else None,
        fields=names,
        gated=names - frozenset(ungated.split(",")),
    )


_SERVICE_FIELDS = "pipelines,owners,tags,domains,followers,dataProducts,ingestionRunner"
KINDS: tuple[Kind, ...] = (
    _kind(
        "services/databaseServices",
        "databaseService",
        "api/services/createDatabaseService.json",
        None,
        _SERVICE_FIELDS,
    ),
    _kind(
        "services/storageServices",
        "storageService",
        "api/services/createStorageService.json",
        None,
        _SERVICE_FIELDS,
    ),
    _kind(
        "services/pipelineServices",
        "pipelineService",
        "api/services/createPipelineService.json",
        None,
        _SERVICE_FIELDS,
    ),
    _kind(
        "services/mlmodelServices",
        "mlmodelService",
        "api/services/createMlModelService.json",
        None,
        _SERVICE_FIELDS,
    ),
    _kind(
        "databases",
        "database",
        "api/data/createDatabase.json",
        ("service", "databaseService"),
        "owners,databaseSchemas,usageSummary,location,tags,extension,domains,sourceHash,"
        "followers,dataProducts,lifeCycle",
        "sourceHash",
    ),
    _kind(
        "databaseSchemas",
        "databaseSchema",
        "api/data/createDatabaseSchema.json",
        ("database", "database"),
        "owners,tables,usageSummary,tags,extension,domains,sourceHash,followers,dataProducts,"
        "lifeCycle",
        "sourceHash",
    ),
    _kind(
        "tables",
        "table",
        "api/data/createTable.json",
        ("databaseSchema", "databaseSchema"),
        "tableConstraints,tablePartition,usageSummary,owners,customMetrics,columns,tags,"
        "followers,joins,schemaDefinition,dataModel,extension,testSuite,domains,dataProducts,"
        "lifeCycle,sourceHash",
        "sourceHash",
    ),
    _kind(
        "containers",
        "container",
        "api/data/createContainer.json",
        ("service", "storageService"),
        "parent,children,dataModel,owners,tags,followers,extension,domains,sourceHash,"
        "dataProducts,lifeCycle",
        "sourceHash,parent",
    ),
    _kind(
        "pipelines",
        "pipeline",
        "api/data/createPipeline.json",
        ("service", "pipelineService"),
        "owners,tasks,pipelineStatus,followers,tags,extension,scheduleInterval,domains,"
        "sourceHash,dataProducts,lifeCycle",
        "sourceHash,scheduleInterval",
    ),
    _kind(
        "mlmodels",
        "mlmodel",
        "api/data/createMlModel.json",
        ("service", "mlmodelService"),
        "owners,dashboard,followers,tags,usageSummary,extension,domains,sourceHash,"
        "dataProducts,lifeCycle,votes",
        "sourceHash",
    ),
    _kind(
        "classifications",
        "classification",
        "api/classification/createClassification.json",
        None,
        "owners,reviewers,usageCount,termCount,domains",
    ),
    _kind(
        "tags",
        "tag",
        "api/classification/createTag.json",
        ("classification", "classification"),
        "owners,reviewers,domains,children,usageCount",
    ),
    _kind(
        "dataQuality/testSuites",
        "testSuite",
        "api/tests/createTestSuite.json",
        None,
        "owners,tests,summary,domains,dataProducts,tags,reviewers",
    ),
    _kind(
        "dataQuality/testCases",
        "testCase",
        "api/tests/createTestCase.json",
        None,
        "owners,testSuite,testDefinition,testSuites,testCaseResult,incidentId,tags,domains,"
        "reviewers",
        "testDefinition,testSuite",
    ),
    _kind(
        "dataQuality/testDefinitions",
        "testDefinition",
        "api/tests/createTestDefinition.json",
        None,
        "owners,domains",
    ),
    _kind("users", "user", None, None, "teams,roles,owns,follows,profile,domains"),
    _kind("teams", "team", None, None, "owners,users,parents,children,domains,defaultRoles"),
)
KIND_BY_COLLECTION = {kind.collection: kind for kind in KINDS}
KIND_BY_TYPE = {kind.type: kind for kind in KINDS}
