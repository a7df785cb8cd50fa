"""Publishing a lineage document: create, repair or leave each managed entity, then the rest.

The order of a publish (each phase reads the server, then writes only what differs):

1. the classification ``OneRing`` with its tags, and the test definition ``oneringAssetCheck``;
2. the five services; the databases and schemas; the lake's root container;
3. the owners (users and teams by name; an unknown one is a warning);
4. pipelines (listed per pipeline service), tables (listed per database), containers
   (listed per storage service) — created, updated when ``sourceHash`` or a managed field
   differs, else left alone;
5. lineage (``lineage.py``), then managed entities no longer in the document are deleted;
6. test suites and test cases (``checks.py``), then each run (``runs.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from onering_catalog import build, services
from onering_catalog.api import Api
from onering_catalog.state import by_name, differs, list_all
from onering_catalog.summary import Summary

T = TypeVar("T")
R = TypeVar("R")


class Publisher:
    """One publish of one document against one server (or the dry-run empty server).

    Attributes:
        refs: ``fqn -> (entity type, id)`` of every managed entity present after the write
            phase (read from the server or from its answer to a write).
        current: ``fqn -> server JSON`` of managed tables/containers/pipelines before writing.
        managed_ids: ids of every entity carrying ``OneRing.managed`` (lineage touches only
            edges between two of these).
    """

    def __init__(self, api: Api, document: dict[str, Any], summary: Summary, workers: int) -> None:
        self.api, self.doc, self.summary = api, document, summary
        self.workers = max(1, workers)
        self.refs: dict[str, tuple[str, str]] = {}
        self.current: dict[str, dict[str, Any]] = {}
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
    ) -> dict[str, Any] | None:
        """PUT ``request()`` unless ``current`` (the server's entity) already matches ``desired``.

        ``desired`` is the request as plain JSON, compared with the server's JSON as it is;
        ``request`` builds the generated model from it only when a write is due (building
        1,000 pydantic requests costs seconds, importing the models about five more). After
        an update, a description the server kept (OpenMetadata does not let a bot's PUT
        overwrite a non-empty description) is repaired with a JSON Patch.
        """
        if current is not None:
            changed = differs(collection, desired, current)
            if not changed:
                self.summary.done("unchanged", f"{kind} {fqn}")
                return current
        answer = self.api.write("PUT", f"/{collection}", request())
        action = "created" if current is None else "updated"
        self.summary.done(action, f"{kind} {fqn}")
        if current is None:
            self.created.add(fqn)
        want = desired.get("description")
        if current is not None and want and answer.get("id") and answer.get("description") != want:
            op = "replace" if answer.get("description") else "add"
            patch = [{"op": op, "path": "/description", "value": want}]
            answer = {**answer, **self.api.write("PATCH", f"/{collection}/{answer['id']}", patch)}
        return answer

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
        """The storage, database and pipeline services of the document."""
        for service in self.doc["services"]:
            collection = services.service_path(service).strip("/")
            current = by_name(self.api, collection, service["name"], "tags,owners")
            answer = self.upsert_plain(collection, service, current)
            self.remember(service["name"], collection.split("/")[1][:-1], answer)

    def upsert_plain(
        self, collection: str, service: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """``upsert`` for services (compared as ``services``: no ``sourceHash`` there)."""
        fqn = service["name"]
        if current is not None and not differs(
            "services", services.service_fields(service), current
        ):
            self.summary.done("unchanged", f"service {fqn}")
            return current
        answer = self.api.write("PUT", f"/{collection}", services.service_request(service))
        self.summary.done("created" if current is None else "updated", f"service {fqn}")
        return answer

    def containers_of_databases(self) -> None:
        """Databases and schemas of the table entities, and the lake's root container."""
        tables = [e for e in self.doc["entities"] if e["entity"] == "table"]
        for service, database in sorted({(e["service"], e["database"]) for e in tables}):
            fqn = f"{service}.{database}"
            current = by_name(self.api, "databases", fqn, "tags,owners,sourceHash")
            fields = build.database_fields(service, database)
            request = lambda fields=fields: build.database_request(fields)  # noqa: E731
            answer = self.upsert("databases", fqn, request, current, "database", fields)
            self.remember(fqn, "database", answer)
        schemas = {(e["service"], e["database"], e["schema"], e["layer"]) for e in tables}
        for service, database, schema, layer in sorted(schemas):
            fqn = f"{service}.{database}.{schema}"
            current = by_name(self.api, "databaseSchemas", fqn, "tags,owners,sourceHash")
            fields = build.schema_fields(service, database, schema, layer)
            request = lambda fields=fields: build.schema_request(fields)  # noqa: E731
            answer = self.upsert("databaseSchemas", fqn, request, current, "databaseSchema", fields)
            self.remember(fqn, "databaseSchema", answer)
        if any(e["entity"] == "container" for e in self.doc["entities"]):
            fqn = f"onering_lake.{build.LAKE_ROOT}"
            current = by_name(self.api, "containers", fqn, "tags,owners,sourceHash")
            fields = build.lake_root_fields()
            request = lambda: build.lake_root_request(fields)  # noqa: E731
            answer = self.upsert("containers", fqn, request, current, "container", fields)
            self.remember(fqn, "container", answer)

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
        """List the managed tables, containers and pipelines the server holds now."""
        listings: list[tuple[str, dict[str, str]]] = []
        tables = {
            (e["service"], e["database"]) for e in self.doc["entities"] if e["entity"] == "table"
        }
        listings += [("tables", {"database": f"{s}.{d}"}) for s, d in sorted(tables)]
        stores = {s["name"] for s in self.doc["services"] if s["kind"] == "storage"}
        listings += [("containers", {"service": s}) for s in sorted(stores)]
        pipes = {s["name"] for s in self.doc["services"] if s["kind"] == "pipeline"}
        listings += [("pipelines", {"service": s}) for s in sorted(pipes)]
        results = self.parallel(lambda item: list_all(self.api, item[0], item[1]), listings)
        root = f"onering_lake.{build.LAKE_ROOT}"
        for (collection, _), entities in zip(listings, results, strict=True):
            for entity in entities:
                fqn = str(entity.get("fullyQualifiedName"))
                if fqn == root:
                    continue
                if any(t.get("tagFQN") == build.MANAGED_TAG for t in entity.get("tags") or []):
                    self.current[fqn] = entity
                    self.collection_of[fqn] = collection
                    self.managed_ids.add(str(entity.get("id")))

    def pipelines(self) -> None:
        """The Dagster code location and each Airflow DAG."""
        for pipeline in self.doc["pipelines"]:
            fqn = pipeline["fqn"]
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
        """Tables and child containers, with owners and (containers) the root as parent."""
        root = self.refs.get(f"onering_lake.{build.LAKE_ROOT}")
        for entity in self.doc["entities"]:
            owners = [r for o in entity.get("owners") or [] if (r := self.owners.get(o))]
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
        """Managed entities on the server that the document no longer names."""
        wanted = {e["fqn"] for e in self.doc["entities"]} | {
            p["fqn"] for p in self.doc["pipelines"]
        }
        return [(fqn, e) for fqn, e in sorted(self.current.items()) if fqn not in wanted]

    def delete_stale(self, stale: list[tuple[str, dict[str, Any]]]) -> None:
        """Hard-delete managed entities no longer in the document (their edges went first)."""
        for fqn, entity in stale:
            collection = self.collection_of[fqn]
            path = f"/{collection}/{entity['id']}?hardDelete=true&recursive=true"
            self.api.write("DELETE", path)
            self.summary.done("deleted", f"{collection[:-1]} {fqn}")
