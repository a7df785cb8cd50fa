"""Entity endpoints of the loopback OpenMetadata server: PUT/POST/GET/PATCH/DELETE per collection.

Paths and status codes follow OpenMetadata's ``EntityResource`` (``PUT /v1/<collection>`` create or
update, ``POST`` create with 409 when it exists, ``GET /name/{fqn}`` and ``/{id}`` with ``fields``
and ``include``, ``PATCH`` JSON Patch, ``DELETE`` with ``hardDelete``/``recursive``) and
``TestSuiteResource`` (``PUT /dataQuality/testSuites/executable`` and ``/basic``).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import jsonpatch

from tests.catalog.om_model import (
    KIND_BY_COLLECTION,
    ApiError,
    Kind,
    add_fqn,
    bad_request,
    not_found,
    quote_name,
)
from tests.catalog.om_schema import schema_errors
from tests.catalog.om_store import _POINTERS, Entity, Json, Store, check_unique, column_fqns

Reply = tuple[int, Any]
_LINK = re.compile(r"^<#E::(\w+)::(.+?)(?:::columns::(.+))?>$")
_COMPUTED = frozenset(
    {
        *("id", "name", "fullyQualifiedName", "version", "updatedAt", "updatedBy", "href"),
        *("deleted", "changeDescription", "serviceType", "service", "database"),
        *("databaseSchema", "parent", "testSuite", "testDefinition", "entityFQN"),
        "basicEntityReference",
    }
)


def validate(schema: str | None, body: Any) -> None:
    """Reject a body that breaks its vendored OpenMetadata schema with 400 (``[...]`` list)."""
    if schema is None:
        raise ApiError(405, "HTTP 405 Method Not Allowed")
    if not isinstance(body, dict):
        raise bad_request("[request body must be a JSON object]")
    errors = schema_errors(schema, body)
    if errors:
        raise bad_request("[" + "; ".join(e[:300] for e in errors) + "]")


class EntityApi:
    """The entity collections, on a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.suite_of: dict[str, str] = {}  # table id -> its basic (executable) test suite id

    # Create / update -------------------------------------------------------------------------

    def put(self, kind: Kind, body: Any, *, post: bool = False, basic_suite: bool = False) -> Reply:
        """``PUT /v1/<collection>`` (create or update) or ``POST`` (create only, 409 if present)."""
        validate(kind.schema, body)
        if kind.type == "mlmodel":
            self._check_feature_sources(body)
        spec = {k: v for k, v in body.items() if k not in _POINTERS or k == "parent"}
        fqn, refs = self._place(kind, body, spec, basic_suite)
        spec.pop("parent", None)
        if post and self.store.find(kind.type, fqn) is not None:
            raise ApiError(409, "Entity already exists")
        status, entity = self.store.upsert(kind, fqn, spec, refs)
        if basic_suite:
            self.suite_of[refs["basicEntityReference"]] = entity.id
        return status, self.store.render(entity, kind.fields)

    def _check_feature_sources(self, body: Json) -> None:
        """``MlModelRepository.validateReferences``: each ``dataSource`` exists, else 404."""
        for feature in body.get("mlFeatures") or []:
            for source in feature.get("featureSources") or []:
                if source.get("dataSource"):
                    self.store.resolve_ref(source["dataSource"])

    def _place(self, kind: Kind, body: Json, spec: Json, basic: bool) -> tuple[str, dict[str, str]]:
        """The FQN OpenMetadata builds for a new entity, and its resolved references."""
        name = str(body["name"])
        if kind.type == "table":
            check_unique(body["columns"], "Column")
        if kind.type == "pipeline":
            check_unique(body.get("tasks") or [], "Task")
        if kind.type == "testSuite":
            return self._suite(body, spec, basic)
        if kind.type == "testCase":
            return self._test_case(body, spec)
        if kind.type == "container" and body.get("parent"):
            parent = self.store.resolve_ref(body["parent"])
            service = self.store.get("storageService", str(body["service"]))
            return add_fqn(parent.fqn, name), {"parent": parent.id, "service": service.id}
        if kind.type == "tag" and body.get("parent"):
            parent = self.store.get("tag", str(body["parent"]))
            return add_fqn(parent.fqn, name), {"parent": parent.id, **parent.refs}
        if kind.parent_field is None:
            return quote_name(name), {}
        if kind.parent_field not in body:
            raise bad_request(f"[{kind.parent_field} must not be null]")
        parent = self.store.get(str(kind.parent_type), str(body[kind.parent_field]))
        return add_fqn(parent.fqn, name), {kind.parent_field: parent.id, **parent.refs}

    def _suite(self, body: Json, spec: Json, basic: bool) -> tuple[str, dict[str, str]]:
        if not basic:
            spec["basic"] = False
            return quote_name(str(body["name"])), {}
        target = body.get("basicEntityReference") or body.get("executableEntityReference")
        if not target:
            raise bad_request("[basicEntityReference must not be null]")
        table = self.store.get("table", str(target))
        for key in ("basicEntityReference", "executableEntityReference"):
            spec.pop(key, None)
        spec["basic"] = True
        return f"{table.fqn}.testSuite", {"basicEntityReference": table.id}

    def _test_case(self, body: Json, spec: Json) -> tuple[str, dict[str, str]]:
        match = _LINK.match(str(body["entityLink"]))
        if match is None or match.group(1) != "table":
            raise bad_request(f"Invalid entity link {body['entityLink']}")
        table = self.store.get("table", match.group(2))
        target = table.fqn
        if match.group(3) is not None:
            target = add_fqn(table.fqn, match.group(3))
            if target not in column_fqns(table.spec.get("columns") or [], table.fqn):
                raise bad_request(f"Invalid column name {match.group(3)}")
        definition = self.store.get("testDefinition", str(body["testDefinition"]))
        given = {p.get("name") for p in body.get("parameterValues") or []}
        for param in definition.spec.get("parameterDefinition") or []:
            if param.get("required") and param.get("name") not in given:
                raise bad_request(
                    f"Required parameter {param['name']} is not passed in parameterValues"
                )
        spec["entityFQN"] = target
        refs = {"_table": table.id, "testDefinition": definition.id}
        if table.id in self.suite_of and self.suite_of[table.id] in self.store.by_id:
            refs["testSuite"] = self.suite_of[table.id]
        return add_fqn(target, str(body["name"])), refs

    # Read ----------------------------------------------------------------------------------

    def fields(self, kind: Kind, query: dict[str, str]) -> frozenset[str]:
        """The ``?fields=`` names, 400 ``"Invalid field name X"`` for one the resource lacks."""
        asked = frozenset(f.strip() for f in query.get("fields", "").split(",") if f.strip())
        for field in sorted(asked - kind.fields):
            raise bad_request(f"Invalid field name {field}")
        return asked

    def get(self, kind: Kind, key: str, by: str, query: dict[str, str]) -> Reply:
        """``GET /v1/<collection>/name/{fqn}`` or ``/{id}``."""
        fields = self.fields(kind, query)
        entity = self.store.get(kind.type, key, by=by, include=query.get("include", ""))
        body = self.store.render(entity, fields)
        if kind.type == "table" and "testSuite" in fields and entity.id in self.suite_of:
            suite = self.store.by_id.get(self.suite_of[entity.id])
            if suite is not None and not suite.deleted:
                body["testSuite"] = self.store.reference(suite)
        if kind.type == "testSuite" and "tests" in fields:
            body["tests"] = [
                self.store.reference(e)
                for e in self.store.of_type("testCase")
                if e.refs.get("testSuite") == entity.id and not e.deleted
            ]
        return 200, body

    def list(self, kind: Kind, query: dict[str, str]) -> Reply:
        """``GET /v1/<collection>?limit&after&fields&<parent>=<fqn>``: a ``ResultList`` page."""
        fields = self.fields(kind, query)
        include = query.get("include", "non-deleted")
        rows = sorted(
            (
                e
                for e in self.store.of_type(kind.type)
                if (include == "all" or e.deleted == (include == "deleted"))
                and self._matches(e, query)
            ),
            key=lambda e: e.fqn,
        )
        start = int(base64.b64decode(query["after"]).decode()) if query.get("after") else 0
        limit = int(query.get("limit", "10"))
        page = rows[start : start + limit]
        paging: Json = {"total": len(rows)}
        if start + limit < len(rows):
            paging["after"] = base64.b64encode(str(start + limit).encode()).decode()
        return 200, {"data": [self.store.render(e, fields) for e in page], "paging": paging}

    def _matches(self, entity: Entity, query: dict[str, str]) -> bool:
        for field in ("service", "database", "databaseSchema", "parent", "classification"):
            if field in query:
                ref = self.store.by_id.get(entity.refs.get(field, ""))
                if ref is None or ref.fqn != query[field]:
                    return False
        if "entityLink" in query:
            match = _LINK.match(query["entityLink"])
            return match is not None and entity.spec.get("entityFQN") == match.group(2)
        return True

    # Patch / delete ------------------------------------------------------------------------

    def patch(self, kind: Kind, key: str, by: str, body: Any) -> Reply:
        """``PATCH /v1/<collection>/{id}`` (or ``/name/{fqn}``) with an RFC 6902 JSON Patch."""
        entity = self.store.get(kind.type, key, by=by)
        if not isinstance(body, list):
            raise bad_request("[JSON Patch must be an array of operations]")
        before = self.store.render(entity, kind.fields)
        try:
            after = jsonpatch.apply_patch(before, body)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise bad_request(f"Invalid JSON Patch: {exc}") from exc
        for field in ("id", "name", "fullyQualifiedName", "version", "deleted"):
            if after.get(field) != before.get(field):
                raise bad_request(f"Field {field} cannot be patched")
        spec = _patched_spec(after, entity.spec)
        if kind.schema is not None:
            errors = schema_errors(kind.schema, {**spec, "name": entity.name, **_pointers(kind)})
            if errors:
                raise bad_request("[" + "; ".join(e[:300] for e in errors) + "]")
        self.store.check_labels(spec)
        self.store.record_change(entity, spec)
        return 200, self.store.render(entity, kind.fields)

    def delete(
        self, kind: Kind, key: str, by: str, query: dict[str, str]
    ) -> tuple[Reply, list[str]]:
        """``DELETE /v1/<collection>/{id}`` or ``/name/{fqn}``; also returns the ids touched."""
        entity = self.store.get(kind.type, key, by=by, include="all")
        if entity.deleted and query.get("hardDelete") != "true":
            raise not_found(kind.type, key)
        body = self.store.render(entity)
        touched = self.store.delete(
            entity,
            hard=query.get("hardDelete") == "true",
            recursive=query.get("recursive") == "true",
        )
        if entity.kind.type == "table":
            for case in list(self.store.of_type("testCase")):
                if case.refs.get("_table") == entity.id:
                    touched += self.store.delete(
                        case, hard=query.get("hardDelete") == "true", recursive=True
                    )
        return (200, body), touched


def _patched_spec(after: Json, old: Json) -> Json:
    """The stored content of a patched entity: its answer minus what the server computes."""
    spec = {k: v for k, v in after.items() if k not in _COMPUTED}
    for key in ("tags", "owners"):
        if spec.get(key) == [] and key not in old:
            spec.pop(key)
    for key in ("testDefinition", "entityFQN"):
        if key in old:
            spec[key] = old[key]
    return _strip_computed(spec)


def _pointers(kind: Kind) -> Json:
    """Placeholder values for the request fields a stored spec no longer carries."""
    if kind.parent_field is None:
        return {}
    return {kind.parent_field: "x"}


def _strip_computed(spec: Json) -> Json:
    """Drop the FQNs the server computes for columns and tasks; keep owner refs as id + type."""

    def clean(columns: list[Json]) -> None:
        for column in columns:
            column.pop("fullyQualifiedName", None)
            clean(column.get("children") or [])

    clean(spec.get("columns") or [])
    clean((spec.get("dataModel") or {}).get("columns") or [])
    for task in spec.get("tasks") or []:
        task.pop("fullyQualifiedName", None)
    for feature in spec.get("mlFeatures") or []:
        feature.pop("fullyQualifiedName", None)
        for source in feature.get("featureSources") or []:
            source.pop("fullyQualifiedName", None)
    for field in ("owners", "reviewers"):
        if field in spec:
            spec[field] = [{"id": r["id"], "type": r["type"]} for r in spec[field]]
    return spec


def split_collection(segments: list[str]) -> tuple[Kind, list[str]] | None:
    """The kind a path's leading segments name (two-segment collections first), and the rest."""
    for width in (2, 1):
        kind = KIND_BY_COLLECTION.get("/".join(segments[:width]))
        if kind is not None:
            return kind, segments[width:]
    return None
