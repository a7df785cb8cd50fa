"""Reading the server's current state, and the fields OneRing compares.

Idempotence is decided against the server, never a local cache: each managed entity is
read (the list endpoints with ``fields=`` and paging for tables, containers, pipelines and
test cases; by name for the few services, databases and schemas) and compared with the
request OneRing would send — ``sourceHash`` first, then the fields OneRing manages, since a
hand edit on the server (a description typed in the UI) leaves ``sourceHash`` as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

from onering_catalog.api import Api
from onering_catalog.build import MANAGED_TAG

PAGE = 1000
FIELDS = {
    "tables": "columns,tags,owners,sourceHash,testSuite",
    "containers": "parent,dataModel,tags,owners,sourceHash",
    "pipelines": "tasks,tags,owners,sourceHash,scheduleInterval",
    "mlmodels": "tags,owners,sourceHash",
    "databases": "tags,owners,sourceHash",
    "databaseSchemas": "tags,owners,sourceHash",
    "services": "tags,owners",
    "dataQuality/testCases": "testDefinition,testSuite,tags",
}
ENTITY_TYPE = {
    "tables": "table",
    "containers": "container",
    "pipelines": "pipeline",
    "mlmodels": "mlmodel",
    "databases": "database",
    "databaseSchemas": "databaseSchema",
    "dataQuality/testCases": "testCase",
}


def by_name(
    api: Api, collection: str, fqn: str, fields: str | None = None
) -> dict[str, Any] | None:
    """GET ``/{collection}/name/{fqn}`` with ``fields``; ``None`` when it does not exist."""
    query = f"?{urlencode({'fields': fields})}" if fields else ""
    return api.get(f"/{collection}/name/{quote(fqn, safe='')}{query}")


def list_all(api: Api, collection: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every entity of a list endpoint (``fields`` from ``FIELDS``), following ``paging.after``."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        query = {"fields": FIELDS[collection], **params, "limit": str(PAGE)}
        if after:
            query["after"] = after
        page = api.get(f"/{collection}?{urlencode(query)}")
        if not page:
            return items
        items.extend(page.get("data") or [])
        after = (page.get("paging") or {}).get("after")
        if not after:
            return items


def tag_fqns(entity: dict[str, Any]) -> set[str]:
    """The tag FQNs on an entity (server JSON or a request dumped to JSON)."""
    return {t.get("tagFQN") for t in entity.get("tags") or [] if t.get("tagFQN")}


def is_managed(entity: dict[str, Any]) -> bool:
    """Whether the entity carries OneRing's ownership tag: OneRing may update it."""
    return MANAGED_TAG in tag_fqns(entity)


def is_owned(entity: dict[str, Any]) -> bool:
    """Whether OneRing may delete the entity: its tag *and* a ``sourceHash``.

    Anyone can add the tag in the UI; only a create-or-update request sets ``sourceHash``,
    so a table a user tagged by hand is never deleted.
    """
    return is_managed(entity) and bool(entity.get("sourceHash"))


def _ids(refs: Iterable[dict[str, Any]] | None) -> list[str]:
    return sorted(str(r.get("id")) for r in refs or [] if r.get("id"))


def _columns(columns: Iterable[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
    return [
        (
            c.get("name"),
            c.get("dataType"),
            c.get("dataTypeDisplay"),
            c.get("dataLength"),
            c.get("precision"),
            c.get("scale"),
        )
        for c in columns or []
    ]


def view(collection: str, entity: dict[str, Any]) -> dict[str, Any]:
    """The fields OneRing manages on an entity, comparable between request and server JSON.

    Descriptions are not here (``description_patch``): OpenMetadata keeps a non-empty
    description — the entity's, a column's, a task's — when a bot PUTs another one, so they
    are repaired with a JSON Patch. Tags are compared apart (``missing_tags``): a PUT adds
    tags but OpenMetadata keeps the ones a user added, so only OneRing's own tags must be
    present.
    """
    out: dict[str, Any] = {}
    if collection == "tables":
        out["columns"] = _columns(entity.get("columns"))
    elif collection == "containers":
        out["columns"] = _columns((entity.get("dataModel") or {}).get("columns"))
    elif collection == "pipelines":
        out["tasks"] = [
            (t.get("name"), sorted(t.get("downstreamTasks") or []))
            for t in entity.get("tasks") or []
        ]
        out["schedule"] = entity.get("scheduleInterval")
    elif collection == "mlmodels":
        out.update(_model_view(entity))
    elif collection == "services":
        out["serviceType"] = entity.get("serviceType")
    elif collection == "dataQuality/testCases":
        definition = entity.get("testDefinition")
        out["testDefinition"] = (
            definition.get("fullyQualifiedName") or definition.get("name")
            if isinstance(definition, dict)
            else definition
        )
        out["parameters"] = sorted(
            (p.get("name"), str(p.get("value"))) for p in entity.get("parameterValues") or []
        )
    if collection in ("tables", "containers", "pipelines", "mlmodels"):
        out["owners"] = _ids(entity.get("owners"))
    return out


def _model_view(entity: dict[str, Any]) -> dict[str, Any]:
    """A model's algorithm, target and features (descriptions too: a PUT replaces them).

    Sources are compared by the id they reference: a source table recreated under the
    same name has a new id, which the model must point at.
    """

    def source(s: dict[str, Any]) -> tuple[Any, ...]:
        ref = s.get("dataSource") or {}
        return (s.get("name"), s.get("dataType"), ref.get("id"))

    return {
        "algorithm": entity.get("algorithm"),
        "target": entity.get("target"),
        "features": [
            (
                f.get("name"),
                f.get("dataType"),
                f.get("description"),
                [source(s) for s in f.get("featureSources") or []],
            )
            for f in entity.get("mlFeatures") or []
        ],
    }


def missing_tags(desired: dict[str, Any], current: dict[str, Any]) -> set[str]:
    """OneRing's tags the server entity lacks."""
    return tag_fqns(desired) - tag_fqns(current)


def differs(collection: str, desired: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The managed fields in which ``current`` (server) differs from ``desired`` (request).

    Owners are compared only when OneRing sends some: a PUT without owners leaves the
    server's owners as they are (an owner given in the UI, or a document owner that names
    no user or team), so comparing them would PUT the entity again on every publish.
    """
    changed = []
    if current.get("deleted"):
        changed.append("deleted")  # soft-deleted: the PUT restores it
    if desired.get("sourceHash") and desired.get("sourceHash") != current.get("sourceHash"):
        changed.append("sourceHash")
    mine, theirs = view(collection, desired), view(collection, current)
    changed += [k for k in mine if mine[k] != theirs.get(k) and (k != "owners" or mine[k])]
    if missing_tags(desired, current):
        changed.append("tags")
    return changed


DESCRIBED = {  # collection -> (JSON pointer of its described items, the item list's path)
    "tables": ("/columns", ("columns",)),
    "containers": ("/dataModel/columns", ("dataModel", "columns")),
    "pipelines": ("/tasks", ("tasks",)),
}


def _items(entity: dict[str, Any], path: tuple[str, ...]) -> list[dict[str, Any]]:
    value: Any = entity
    for key in path:
        value = (value or {}).get(key) if isinstance(value, dict) else None
    return list(value or [])


def description_patch(
    collection: str, desired: dict[str, Any], current: dict[str, Any]
) -> list[dict[str, Any]]:
    """JSON Patch operations setting OneRing's descriptions the server lacks.

    The entity's description, and its columns' (tables, containers) or tasks' (pipelines):
    each one OneRing has that differs on the server (a hand edit in the UI, which a bot's
    PUT cannot overwrite). A description OneRing does not have is left as the server has it.
    """
    ops: list[dict[str, Any]] = []
    want = desired.get("description")
    if want and current.get("description") != want:
        ops.append({"op": "add", "path": "/description", "value": want})
    if collection not in DESCRIBED:
        return ops
    pointer, path = DESCRIBED[collection]
    wanted = {i.get("name"): i.get("description") for i in _items(desired, path)}
    for index, item in enumerate(_items(current, path)):
        text = wanted.get(item.get("name"))
        if text and item.get("description") != text:
            ops.append({"op": "add", "path": f"{pointer}/{index}/description", "value": text})
    return ops
