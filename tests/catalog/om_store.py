"""The loopback OpenMetadata server's state: entities by id and FQN, versions, references.

Follows ``EntityRepository``: a PUT creates (201, version 0.1) or updates (200); an update that
changes nothing keeps the version; a change adds 0.1 (1.0 when columns are removed or their type
changes, OpenMetadata's major change); a PUT never blanks a field the request leaves out.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tests.catalog.om_model import (
    KIND_BY_TYPE,
    ApiError,
    Kind,
    add_fqn,
    bad_request,
    not_found,
    quote_name,
)

Json = dict[str, Any]
# Request fields that name other entities and so are kept as references, not copied into the body.
_POINTERS = frozenset({"service", "database", "databaseSchema", "classification", "parent"})


class Entity:
    """One stored entity: its identity, the request-derived content, and its version history."""

    def __init__(self, kind: Kind, name: str, fqn: str, spec: Json, refs: dict[str, str]) -> None:
        self.kind = kind
        self.id = str(uuid.uuid4())
        self.name = name
        self.fqn = fqn
        self.spec = spec
        self.refs = refs  # field name -> referenced entity id (service, database, parent, ...)
        self.version = 0.1
        self.updated_at = int(time.time() * 1000)
        self.deleted = False
        self.change: Json | None = None
        self.children: set[str] = set()


class Store:
    """Entities by id and by (type, FQN), with their parent/child links."""

    def __init__(self, base_url: str, user: str) -> None:
        self.base_url = base_url
        self.user = user
        self.by_id: dict[str, Entity] = {}
        self.by_fqn: dict[tuple[str, str], str] = {}

    # Lookups -------------------------------------------------------------------------------

    def get(self, entity_type: str, key: str, *, by: str = "name", include: str = "") -> Entity:
        """The entity of a type by FQN (``by="name"``) or id, else OpenMetadata's 404.

        Raises:
            ApiError: 404 when absent, or soft-deleted and ``include`` is not deleted/all.
        """
        entity_id = self.by_fqn.get((entity_type, key)) if by == "name" else key
        entity = self.by_id.get(entity_id or "")
        if entity is None or entity.kind.type != entity_type:
            raise not_found(entity_type, key)
        if entity.deleted and include not in ("deleted", "all"):
            raise not_found(entity_type, key)
        return entity

    def find(self, entity_type: str, fqn: str) -> Entity | None:
        """The live entity of a type by FQN, or None."""
        entity = self.by_id.get(self.by_fqn.get((entity_type, fqn), ""))
        return entity if entity is not None and not entity.deleted else None

    def of_type(self, entity_type: str) -> Iterator[Entity]:
        """Every stored entity of a type, soft-deleted ones included."""
        return (e for e in self.by_id.values() if e.kind.type == entity_type)

    def reference(self, entity: Entity) -> Json:
        """An ``EntityReference`` to an entity, as OpenMetadata answers it."""
        ref: Json = {
            "id": entity.id,
            "type": entity.kind.type,
            "name": entity.name,
            "fullyQualifiedName": entity.fqn,
            "deleted": entity.deleted,
            "href": f"{self.base_url}/v1/{entity.kind.collection}/{entity.id}",
        }
        for key in ("displayName", "description"):
            if key in entity.spec:
                ref[key] = entity.spec[key]
        return ref

    def resolve_ref(self, ref: Json) -> Entity:
        """The live entity an ``EntityReference`` (id + type) points at, else 404."""
        entity_type = str(ref.get("type"))
        if entity_type not in KIND_BY_TYPE:
            raise bad_request(f"Invalid entity type {entity_type}")
        return self.get(entity_type, str(ref.get("id")), by="id")

    # Writes --------------------------------------------------------------------------------

    def check_labels(self, spec: Json) -> None:
        """Tags must name existing tags; owners and reviewers must be existing users or teams."""
        for label in _all_tags(spec):
            if label.get("source") == "Glossary":
                raise not_found("glossaryTerm", str(label.get("tagFQN")))
            self.get("tag", str(label.get("tagFQN")))
        for field in ("owners", "reviewers"):
            for ref in spec.get(field) or []:
                if ref.get("type") not in ("user", "team"):
                    raise bad_request(f"Invalid entity type {ref.get('type')} for {field}")
                self.resolve_ref(ref)

    def upsert(self, kind: Kind, fqn: str, spec: Json, refs: dict[str, str]) -> tuple[int, Entity]:
        """Create or update (PUT) an entity; the answer's status is 201 or 200.

        Args:
            kind: The entity kind.
            fqn: The FQN the server built for it.
            spec: The request body without the fields naming parents.
            refs: Resolved references (field name -> entity id), the direct parent first.

        Returns:
            The HTTP status (201 created, 200 updated or unchanged) and the entity.
        """
        self.check_labels(spec)
        name = str(spec.pop("name"))
        existing = self.by_id.get(self.by_fqn.get((kind.type, fqn), ""))
        if existing is None:
            entity = Entity(kind, name, fqn, spec, refs)
            self.by_id[entity.id] = entity
            self.by_fqn[(kind.type, fqn)] = entity.id
            parent_id = next(iter(refs.values()), None)  # the direct parent comes first
            if parent_id in self.by_id:
                self.by_id[parent_id].children.add(entity.id)
            return 201, entity
        merged = {**existing.spec, **{k: v for k, v in spec.items() if v is not None}}
        _keep_for_bot_put(existing.spec, merged)
        self.record_change(existing, merged, restore=existing.deleted)
        existing.refs = refs
        return 200, existing

    def record_change(self, entity: Entity, new_spec: Json, *, restore: bool = False) -> bool:
        """Replace an entity's content, bumping its version only if something changed."""
        old = entity.spec
        if new_spec == old and not restore:
            return False
        added = [{"name": k, "newValue": new_spec[k]} for k in new_spec if k not in old]
        updated = [
            {"name": k, "oldValue": old[k], "newValue": new_spec[k]}
            for k in new_spec
            if k in old and old[k] != new_spec[k]
        ]
        deleted = [{"name": k, "oldValue": old[k]} for k in old if k not in new_spec]
        if restore:
            updated.append({"name": "deleted", "oldValue": True, "newValue": False})
        step = 1.0 if _is_major(old, new_spec) else 0.1
        entity.change = {
            "fieldsAdded": added,
            "fieldsUpdated": updated,
            "fieldsDeleted": deleted,
            "previousVersion": entity.version,
        }
        entity.version = round(entity.version + step, 1)
        entity.updated_at = int(time.time() * 1000)
        entity.spec = new_spec
        entity.deleted = False
        return True

    def delete(self, entity: Entity, *, hard: bool, recursive: bool) -> list[str]:
        """Soft- or hard-delete an entity (and its children when ``recursive``).

        Returns:
            The ids removed from the store (hard delete) or marked deleted (soft delete).

        Raises:
            ApiError: 400 ``"<type> is not empty"`` when it has live children and not recursive.
        """
        live = [c for c in entity.children if c in self.by_id and not self.by_id[c].deleted]
        if live and not recursive:
            raise bad_request(f"{entity.kind.type} is not empty")
        touched = [entity.id]
        for child_id in list(entity.children):
            if child_id in self.by_id:
                touched += self.delete(self.by_id[child_id], hard=hard, recursive=True)
        if hard:
            self.by_id.pop(entity.id, None)
            self.by_fqn.pop((entity.kind.type, entity.fqn), None)
            for parent_id in entity.refs.values():
                if parent_id in self.by_id:
                    self.by_id[parent_id].children.discard(entity.id)
        elif not entity.deleted:
            entity.change = {
                "fieldsUpdated": [{"name": "deleted", "oldValue": False, "newValue": True}],
                "previousVersion": entity.version,
            }
            entity.version = round(entity.version + 0.1, 1)
            entity.deleted = True
        return touched

    # Rendering -----------------------------------------------------------------------------

    def render(self, entity: Entity, fields: frozenset[str] = frozenset()) -> Json:
        """The entity's JSON as OpenMetadata answers it, with gated fields only when asked."""
        kind = entity.kind
        body: Json = {
            key: copy.deepcopy(value)
            for key, value in entity.spec.items()
            if key not in kind.gated or key in fields
        }
        body.update(
            id=entity.id,
            name=entity.name,
            fullyQualifiedName=entity.fqn,
            version=entity.version,
            updatedAt=entity.updated_at,
            updatedBy=self.user,
            href=f"{self.base_url}/v1/{kind.collection}/{entity.id}",
            deleted=entity.deleted,
        )
        if entity.change is not None:
            body["changeDescription"] = entity.change
        for field, ref_id in entity.refs.items():
            if field.startswith("_"):  # internal links (a test case's table) are not fields
                continue
            if ref_id in self.by_id and (field not in kind.gated or field in fields):
                body[field] = self.reference(self.by_id[ref_id])
        self._expand_refs(body, fields)
        _set_child_fqns(body, entity.fqn)
        service = self._service_of(entity)
        if service is not None:
            body["serviceType"] = service.spec.get("serviceType")
            if service is not entity:
                body["service"] = self.reference(service)
        return body

    def _expand_refs(self, body: Json, fields: frozenset[str]) -> None:
        for field in ("owners", "reviewers"):
            if field in body:
                targets = [self.by_id.get(str(ref.get("id"))) for ref in body[field]]
                body[field] = [self.reference(t) for t in targets if t is not None]
        for field in ("owners", "tags"):
            if field in fields and field not in body:
                body[field] = []

    def _service_of(self, entity: Entity) -> Entity | None:
        seen = entity
        for _ in range(8):
            if seen.kind.type.endswith("Service"):
                return seen
            parent_id = next(
                (v for k, v in seen.refs.items() if k in ("service", "database", "databaseSchema")),
                None,
            )
            if parent_id is None or parent_id not in self.by_id:
                return None
            seen = self.by_id[parent_id]
        return None


def _keep_for_bot_put(old: Json, new: Json) -> None:
    """What ``EntityRepository``'s updater keeps when a bot PUTs (every caller here is one).

    ``updateDescription``, ``updateColumnDescription`` and the pipeline's task twin: a
    non-empty stored description (the entity's, a column's, a task's) is kept — only a
    PATCH changes it. ``updateTags``: a PUT merges the request's tags with the stored ones.
    """
    if old.get("description") and "description" in new:
        new["description"] = old["description"]
    for path in (("columns",), ("dataModel", "columns"), ("tasks",)):
        _keep_item_descriptions(_at(old, path), _at(new, path))
    if old.get("tags") and new.get("tags") is not old.get("tags"):
        names = {t.get("tagFQN") for t in new["tags"]}
        new["tags"] = [t for t in old["tags"] if t.get("tagFQN") not in names] + new["tags"]


def _at(spec: Json, path: tuple[str, ...]) -> list[Json]:
    value: Any = spec
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, list) else []


def _keep_item_descriptions(old: list[Json], new: list[Json]) -> None:
    stored = {str(i.get("name")): i for i in old}
    for item in new:
        before = stored.get(str(item.get("name")))
        if before is None:
            continue
        if before.get("description"):
            item["description"] = before["description"]
        _keep_item_descriptions(before.get("children") or [], item.get("children") or [])


def column_fqns(columns: list[Json], prefix: str) -> set[str]:
    """Every column FQN (nested children included) under an entity FQN."""
    out: set[str] = set()
    for column in columns:
        fqn = add_fqn(prefix, str(column["name"]))
        out.add(fqn)
        out |= column_fqns(column.get("children") or [], fqn)
    return out


def _set_child_fqns(body: Json, fqn: str) -> None:
    def columns(items: list[Json], prefix: str) -> None:
        for column in items:
            column["fullyQualifiedName"] = add_fqn(prefix, str(column["name"]))
            columns(column.get("children") or [], column["fullyQualifiedName"])

    columns(body.get("columns") or [], fqn)
    columns((body.get("dataModel") or {}).get("columns") or [], fqn)
    for task in body.get("tasks") or []:
        task["fullyQualifiedName"] = f"{fqn}.{quote_name(str(task['name']))}"
    # ``MlModelRepository.setMlFeatureFQN``: a feature under the model, a source under the
    # entity its ``dataSource`` names (its bare name without one).
    for feature in body.get("mlFeatures") or []:
        feature["fullyQualifiedName"] = add_fqn(fqn, str(feature["name"]))
        for source in feature.get("featureSources") or []:
            parent = (source.get("dataSource") or {}).get("fullyQualifiedName")
            name = str(source.get("name"))
            source["fullyQualifiedName"] = add_fqn(parent, name) if parent else name


def _all_tags(spec: Json) -> Iterator[Json]:
    yield from spec.get("tags") or []
    stack = list(spec.get("columns") or []) + list(
        (spec.get("dataModel") or {}).get("columns") or []
    )
    stack += list(spec.get("tasks") or [])
    for feature in spec.get("mlFeatures") or []:
        stack += [feature, *(feature.get("featureSources") or [])]
    while stack:
        item = stack.pop()
        yield from item.get("tags") or []
        stack += item.get("children") or []


def _is_major(old: Json, new: Json) -> bool:
    """OpenMetadata's major change: a column removed or its data type changed."""
    before = {c["name"]: c.get("dataType") for c in old.get("columns") or []}
    after = {c["name"]: c.get("dataType") for c in new.get("columns") or []}
    return any(name not in after or after[name] != kind for name, kind in before.items())


def check_unique(items: list[Json], what: str) -> None:
    """OpenMetadata rejects repeated column or task names with 400."""
    seen: set[str] = set()
    for item in items:
        name = str(item.get("name"))
        if name in seen:
            raise ApiError(400, f"{what} name {name} is repeated")
        seen.add(name)
