"""Publishing a lineage document: create, repair or leave each managed entity, then the rest.

The order of a publish (each phase reads the server, then writes only what differs):

1. the classification ``OneRing`` with its tags, and the test definition ``oneringAssetCheck``;
2. the services (not Feast's: OpenMetadata has no feature-store service or entity, see
   ``edges.py``); the databases and schemas; the lake's root containers (one per folder);
3. the owners (users and teams by name; an unknown one is a warning);
4. pipelines (listed per pipeline service), tables (listed per database), containers
   (listed per storage service), ML models (listed per ML model service, written last:
   ``mlmodels.py``), soft-deleted ones included — created, updated when ``sourceHash`` or a
   managed field differs (a soft-deleted one is restored), descriptions repaired with a
   JSON Patch, else left alone. One without ``OneRing.managed`` at a FQN the document names
   is someone else's: never written, an error (``refuse``); an untagged service, database,
   schema or root container is used as it is, with a warning (``existing``);
5. lineage (``lineage.py``), then OneRing's entities no longer in the document (tag and
   ``sourceHash``) are soft-deleted;
6. test suites and test cases (``checks.py``), then each run (``runs.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from onering_catalog import build, services
from onering_catalog.api import Api
from onering_catalog.state import (
    ENTITY_TYPE,
    by_name,
    description_patch,
    differs,
    is_managed,
    is_owned,
    list_all,
)
from onering_catalog.summary import Summary

T = TypeVar("T")
R = TypeVar("R")


class Publisher:
    """One publish of one document against one server (or the dry-run empty server).

    Attributes:
        refs: ``fqn -> (entity type, id)`` of every managed entity present after the write
            phase (read from the server or from its answer to a write).
        current: ``fqn -> server JSON`` of managed tables/containers/pipelines before writing.
        foreign: ``fqn -> server JSON`` of someone else's (untagged) entities at the FQNs
            the document names: never written, reported as errors.
        managed_ids: ids of every entity carrying ``OneRing.managed`` (lineage touches only
            edges between two of these).
    """

    def __init__(self, api: Api, document: dict[str, Any], summary: Summary, workers: int) -> None:
        self.api, self.doc, self.summary = api, document, summary
        self.workers = max(1, workers)
        self.refs: dict[str, tuple[str, str]] = {}
        self.current: dict[str, dict[str, Any]] = {}
        self.foreign: dict[str, dict[str, Any]] = {}
        self.collection_of: dict[str, str] = {}
        self.managed_ids: set[str] = set()
        self.owners: dict[str, dict[str, str] | None] = {}
        self.created: set[str] = set()

    def parallel(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on the thread pool (in order when ``workers`` is 1)."""
        items = list(items)
        if self.workers == 1 or len(items) < 2:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(fn, items))

    # -- writes -----------------------------------------------------------------------------

    def upsert(
        self,
        collection: str,
        fqn: str,
        request: Callable[[], Any],
        current: dict[str, Any] | None,
        kind: str,
        desired: dict[str, Any],
        compare_as: str | None = None,
    ) -> dict[str, Any] | None:
        """PUT ``request()`` unless ``current`` (the server's entity) already matches ``desired``.

        ``current`` is OneRing's own entity (it carries ``OneRing.managed``) or ``None`` when
        nothing is at ``fqn``: callers never pass another's entity (``refuse``). ``desired``
        is the request as plain JSON, compared with the server's JSON as it is; ``request``
        builds the generated model from it only when a write is due (building 1,000 pydantic
        requests costs seconds, importing the models about five more). Descriptions the
        server holds otherwise (OpenMetadata does not let a bot's PUT overwrite a non-empty
        description, of the entity, a column or a task) are repaired with a JSON Patch. A
        PUT answered 201 counts as created, 200 (it was there: restored, retagged) as updated.
        ``compare_as`` names the fields compared when they are not ``collection``'s
        (``services`` for the three service collections).
        """
        answer = current
        action = None
        compared = compare_as or collection
        if current is None or differs(compared, desired, current):
            answer = self.api.write("PUT", f"/{collection}", request())
            action = "created" if self.api.last_status() == 201 else "updated"
            if action == "created":
                self.created.add(fqn)
        ops = description_patch(compared, desired, answer or {})
        if ops and answer and answer.get("id"):
            path = f"/{collection}/{answer['id']}"
            answer = {**answer, **self.api.write("PATCH", path, ops)}
            action = action or "updated"
        self.summary.done(action or "unchanged", f"{kind} {fqn}")
        return answer

    def refuse(self, kind: str, fqn: str, entity: dict[str, Any]) -> None:
        """Leave another's entity at a OneRing FQN alone, and say so as an error.

        An error, not a warning, so the publish is not ok (exit 2, not retryable): the
        catalog does not show this asset as OneRing publishes it, its edges, checks and
        statuses are left out too, and no retry changes that: a person must tag the entity
        or remove it. Everything else is still published.
        """
        gone = " (soft-deleted)" if entity.get("deleted") else ""
        remove = "remove it for good (hard delete)" if gone else "remove it"
        self.summary.errors.append(
            f"{kind} {fqn}{gone} exists in OpenMetadata and is not OneRing's (no "
            f"{build.MANAGED_TAG} tag): left alone; tag it to let OneRing manage it, or {remove}"
        )
        self.summary.not_written.append(f"{kind} {fqn} (not OneRing's)")

    def existing(
        self, collection: str, kind: str, fqn: str, current: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """A service, database, schema or the lake's root without the tag: used as it is.

        They only hold OneRing's entities: their connection and settings are someone's
        choice, never PUT over; a warning says OneRing found them.
        """
        if current is None or is_managed(current):
            return None
        self.summary.warn(
            f"{kind} {fqn} exists in OpenMetadata and is not OneRing's (no "
            f"{build.MANAGED_TAG} tag): used as it is, not updated"
        )
        self.summary.done("unchanged", f"{kind} {fqn}")
        if current.get("id"):
            self.refs[fqn] = (ENTITY_TYPE.get(collection, kind), str(current["id"]))
        return current

    def remember(self, fqn: str, entity_type: str, entity: dict[str, Any] | None) -> None:
        """Keep the id of a managed entity for references (lineage, parents)."""
        if entity and entity.get("id"):
            self.refs[fqn] = (entity_type, str(entity["id"]))
            self.managed_ids.add(str(entity["id"]))

    # -- phases -----------------------------------------------------------------------------

    def prerequisites(self) -> None:
        """The classification and its tags, then the custom test definition, if missing."""
        for path, fqn, request in services.classification_requests():
            collection = path.strip("/")
            if by_name(self.api, collection, fqn) is None:
                self.api.write("PUT", path, request())
                self.summary.done("created", f"{collection[:-1]} {fqn}")
        definition = by_name(self.api, "dataQuality/testDefinitions", build.TEST_DEFINITION)
        if definition is None:
            self.api.write(
                "PUT", "/dataQuality/testDefinitions", services.test_definition_request()
            )
            self.summary.done("created", f"testDefinition {build.TEST_DEFINITION}")

    def services(self) -> None:
        """The storage, database, pipeline and ML model services of the document."""
        for service in self.doc["services"]:
            path = services.service_path(service)
            if path is None:  # Feast: its views are drawn through (``edges.py``)
                continue
            collection = path.strip("/")
            fqn = service["name"]
            current = by_name(self.api, collection, fqn, "tags,owners")
            entity_type = collection.split("/")[1][:-1]
            if self.existing(collection, entity_type, fqn, current) is not None:
                continue
            answer = self.upsert(
                collection,
                fqn,
                lambda service=service: services.service_request(service),
                current,
                "service",
                services.service_fields(service),
                compare_as="services",
            )
            self.remember(fqn, entity_type, answer)

    def _parent(
        self, collection: str, fqn: str, fields: dict[str, Any], request: Callable[[], Any]
    ) -> None:
        """A database, schema or the lake's root: created, updated, or someone's used as is."""
        kind = ENTITY_TYPE[collection]
        current = by_name(self.api, collection, fqn, "tags,owners,sourceHash")
        if self.existing(collection, kind, fqn, current) is not None:
            return
        answer = self.upsert(collection, fqn, request, current, kind, fields)
        self.remember(fqn, kind, answer)

    def containers_of_databases(self) -> None:
        """Databases and schemas of the table entities, and the lake's root container."""
        tables = [e for e in self.doc["entities"] if e["entity"] == "table"]
        for service, database in sorted({(e["service"], e["database"]) for e in tables}):
            fields = build.database_fields(service, database)
            request = lambda fields=fields: build.database_request(fields)  # noqa: E731
            self._parent("databases", f"{service}.{database}", fields, request)
        schemas = {(e["service"], e["database"], e["schema"], e["layer"]) for e in tables}
        for service, database, schema, layer in sorted(schemas):
            fields = build.schema_fields(service, database, schema, layer)
            request = lambda fields=fields: build.schema_request(fields)  # noqa: E731
            self._parent("databaseSchemas", f"{service}.{database}.{schema}", fields, request)
        for root in build.lake_roots(self.doc["entities"]):
            fields = build.lake_root_fields(root)
            request = lambda fields=fields: build.lake_root_request(fields)  # noqa: E731
            self._parent("containers", build.lake_root_fqn(root), fields, request)

    def resolve_owners(self) -> None:
        """Each distinct owner as a user or team reference; unknown ones are warnings."""
        names = sorted({o for e in self.doc["entities"] for o in e.get("owners") or []})

        def resolve(owner: str) -> dict[str, str] | None:
            kind, _, name = owner.partition(":") if ":" in owner else ("user", "", owner)
            if kind not in ("team", "user"):
                return None
            name = name.split("@")[0] if kind == "user" else name
            found = by_name(self.api, f"{kind}s", name)
            return {"id": str(found["id"]), "type": kind} if found else None

        for owner, ref in zip(names, self.parallel(resolve, names), strict=True):
            self.owners[owner] = ref
            if ref is None:
                self.summary.warn(
                    f"owner {owner!r} is not a user or team in OpenMetadata: left out"
                )

    def read_current(self) -> None:
        """List the tables, containers and pipelines the server holds now, soft-deleted too.

        Those carrying ``OneRing.managed`` are OneRing's (``current``); any other one at a
        FQN the document names is someone else's (``foreign``) and is never written.
        """
        listings: list[tuple[str, dict[str, str]]] = []
        tables = {
            (e["service"], e["database"]) for e in self.doc["entities"] if e["entity"] == "table"
        }
        listings += [("tables", {"database": f"{s}.{d}"}) for s, d in sorted(tables)]
        stores = {s["name"] for s in self.doc["services"] if s["kind"] == "storage"}
        listings += [("containers", {"service": s}) for s in sorted(stores)]
        pipes = {s["name"] for s in self.doc["services"] if s["kind"] == "pipeline"}
        listings += [("pipelines", {"service": s}) for s in sorted(pipes)]
        models = {s["name"] for s in self.doc["services"] if s["kind"] == "mlmodel"}
        listings += [("mlmodels", {"service": s}) for s in sorted(models)]
        read = lambda item: list_all(self.api, item[0], {**item[1], "include": "all"})  # noqa: E731
        results = self.parallel(read, listings)
        roots = {build.lake_root_fqn(r) for r in build.lake_roots(self.doc["entities"])}
        wanted = self.wanted()
        for (collection, _), entities in zip(listings, results, strict=True):
            for entity in entities:
                fqn = str(entity.get("fullyQualifiedName"))
                if fqn in roots:
                    continue
                if not is_managed(entity):
                    if fqn in wanted:
                        self.foreign[fqn] = entity
                    continue
                if entity.get("deleted") and fqn not in wanted:
                    continue  # OneRing's, removed before: stays soft-deleted
                self.current[fqn] = entity
                self.collection_of[fqn] = collection
                self.managed_ids.add(str(entity.get("id")))

    def wanted(self) -> set[str]:
        """The FQNs of the document's entities and pipelines."""
        return {e["fqn"] for e in self.doc["entities"]} | {p["fqn"] for p in self.doc["pipelines"]}

    def pipelines(self) -> None:
        """The Dagster code location and each Airflow DAG."""
        for pipeline in self.doc["pipelines"]:
            fqn = pipeline["fqn"]
            if fqn in self.foreign:
                self.refuse("pipeline", fqn, self.foreign[fqn])
                continue
            fields = build.pipeline_fields(pipeline)
            answer = self.upsert(
                "pipelines",
                fqn,
                lambda fields=fields: build.pipeline_request(fields),
                self.current.get(fqn),
                "pipeline",
                desired=fields,
            )
            self.remember(fqn, "pipeline", answer)

    def entities(self) -> None:
        """Tables and child containers, with owners and (containers) their root as parent.

        Models come later (``mlmodels.sync_models``); Feast views are not entities there.
        """
        for entity in self.doc["entities"]:
            if entity["entity"] not in ("table", "container"):
                continue
            if entity["fqn"] in self.foreign:
                self.refuse(entity["entity"], entity["fqn"], self.foreign[entity["fqn"]])
                continue
            owners = [r for o in entity.get("owners") or [] if (r := self.owners.get(o))]
            root = self.refs.get(build.lake_root_fqn(entity["schema"]))
            parent = root[1] if root and entity["entity"] == "container" else None
            fields = build.entity_fields(entity, owners, parent)
            collection = "containers" if entity["entity"] == "container" else "tables"
            current = self.current.get(entity["fqn"])
            answer = self.upsert(
                collection,
                entity["fqn"],
                lambda fields=fields: build.entity_request(fields),
                current,
                entity["entity"],
                desired=fields,
            )
            self.remember(entity["fqn"], entity["entity"], answer)

    def stale(self) -> list[tuple[str, dict[str, Any]]]:
        """OneRing's entities on the server that the document no longer names.

        Only those with the tag and a ``sourceHash`` (``is_owned``): a tag a user added by
        hand does not make someone's table deletable.
        """
        wanted = self.wanted()
        return [
            (fqn, e)
            for fqn, e in sorted(self.current.items())
            if fqn not in wanted and is_owned(e) and not e.get("deleted")
        ]

    def delete_stale(self, stale: list[tuple[str, dict[str, Any]]]) -> None:
        """Soft-delete OneRing's entities no longer in the document (their edges went first).

        Soft, so that a mistake is recoverable (restore in the UI); a later publish whose
        document names it again restores it (OpenMetadata's PUT of a soft-deleted name
        undeletes it) and updates it.
        """
        for fqn, entity in stale:
            collection = self.collection_of[fqn]
            self.api.write("DELETE", f"/{collection}/{entity['id']}?recursive=true")
            self.summary.done("deleted", f"{collection[:-1]} {fqn}")
