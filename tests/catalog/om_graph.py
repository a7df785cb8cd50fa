"""Lineage, pipeline statuses and test case results of the loopback OpenMetadata server.

Paths from ``LineageResource`` (``PUT /v1/lineage``, ``GET /v1/lineage/{entity}/name/{fqn}``,
``GET /v1/lineage/getLineageEdge/{fromId}/{toId}``, ``DELETE /v1/lineage/{fromEntity}/{fromId}/
{toEntity}/{toId}`` and the ``/name/`` forms the 2.0.7 client's lineage mixin sends),
``PipelineResource`` (``PUT /v1/pipelines/{fqn}/status``, ``GET .../status?startTs&endTs``) and
``TestCaseResource`` (``POST|GET /v1/dataQuality/testCases/testCaseResults/{fqn}``).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Any

import jsonpatch

from tests.catalog.om_api import Reply, validate
from tests.catalog.om_model import ApiError, add_fqn, bad_request
from tests.catalog.om_schema import schema_errors
from tests.catalog.om_store import Entity, Json, Store, column_fqns


class Graph:
    """Lineage edges by (from id, to id), pipeline statuses and test results by timestamp."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # None: a relationship without lineage details (drawn by the server itself).
        self.edges: dict[tuple[str, str], Json | None] = {}
        self.out: defaultdict[str, set[str]] = defaultdict(set)
        self.into: defaultdict[str, set[str]] = defaultdict(set)
        self.statuses: defaultdict[str, dict[int, Json]] = defaultdict(dict)
        self.results: defaultdict[str, dict[int, Json]] = defaultdict(dict)

    # Lineage -------------------------------------------------------------------------------

    def add_lineage(self, body: Any) -> Reply:
        """``PUT /v1/lineage`` with an ``AddLineageRequest``."""
        validate("api/lineage/addLineage.json", body)
        edge = body["edge"]
        source = self.store.resolve_ref(edge["fromEntity"])
        target = self.store.resolve_ref(edge["toEntity"])
        self._store_edge(source, target, edge.get("lineageDetails") or {})
        return 200, None

    def add_lineage_by_name(self, parts: list[str], body: Any) -> Reply:
        """``PUT /v1/lineage/{fromType}/name/{fromFQN}/{toType}/name/{toFQN}`` with details."""
        source, target = self.by_name(parts)
        errors = schema_errors("type/entityLineage.json", body, "#/definitions/lineageDetails")
        if errors:
            raise bad_request("[" + "; ".join(errors) + "]")
        self._store_edge(source, target, body or {})
        return 200, None

    def by_name(self, parts: list[str]) -> tuple[Entity, Entity]:
        """The two ends of ``{fromType}/name/{fromFQN}/{toType}/name/{toFQN}``, else 404."""
        if len(parts) != 6 or parts[1] != "name" or parts[4] != "name":
            raise ApiError(404, "HTTP 404 Not Found")
        return self.store.get(parts[0], parts[2]), self.store.get(parts[3], parts[5])

    def _store_edge(self, source: Entity, target: Entity, details: Json) -> None:
        if source.id == target.id:
            raise bad_request("Lineage edge from an entity to itself is not allowed")
        if details.get("pipeline"):
            details["pipeline"] = self.store.reference(self.store.resolve_ref(details["pipeline"]))
        from_columns, to_columns = self._columns(source), self._columns(target)
        for pair in details.get("columnsLineage") or []:
            for column in pair.get("fromColumns") or []:
                if column not in from_columns:
                    raise bad_request(f"Invalid fully qualified column name {column}")
            if pair.get("toColumn") and pair["toColumn"] not in to_columns:
                raise bad_request(f"Invalid fully qualified column name {pair['toColumn']}")
        now = int(time.time() * 1000)
        old = self.edges.get((source.id, target.id))
        details = {"source": "Manual", **details, "updatedAt": now, "updatedBy": self.store.user}
        details["createdAt"] = old["createdAt"] if old else now
        details["createdBy"] = old["createdBy"] if old else self.store.user
        self.edges[(source.id, target.id)] = details
        self.out[source.id].add(target.id)
        self.into[target.id].add(source.id)

    def _columns(self, entity: Entity) -> set[str]:
        """``LineageRepository.getChildrenNames``: columns, a container's, a model's features."""
        spec = entity.spec
        if entity.kind.type == "mlmodel":
            return {add_fqn(entity.fqn, str(f["name"])) for f in spec.get("mlFeatures") or []}
        columns = spec.get("columns") or (spec.get("dataModel") or {}).get("columns") or []
        return column_fqns(columns, entity.fqn)

    def add_feature_lineage(self, model: Entity) -> None:
        """``MlModelRepository.setMlFeatureSourcesLineage``, on create: an edge from each
        feature source's ``dataSource`` into the model, a bare relationship without details.
        """
        for feature in model.spec.get("mlFeatures") or []:
            for source in feature.get("featureSources") or []:
                ref = source.get("dataSource")
                if not ref:
                    continue
                origin = self.store.resolve_ref(ref)
                self.edges.setdefault((origin.id, model.id), None)
                self.out[origin.id].add(model.id)
                self.into[model.id].add(origin.id)

    def get_lineage(self, entity: Entity, query: dict[str, str]) -> Reply:
        """``GET /v1/lineage/{entity}/name/{fqn}`` (or ``/{id}``): an ``EntityLineage``."""
        up = min(int(query.get("upstreamDepth", "1")), 3)
        down = min(int(query.get("downstreamDepth", "1")), 3)
        nodes: dict[str, Entity] = {}
        upstream = self._walk(entity.id, up, self.into, reverse=True, nodes=nodes)
        downstream = self._walk(entity.id, down, self.out, reverse=False, nodes=nodes)
        nodes.pop(entity.id, None)
        return 200, {
            "entity": self.store.reference(entity),
            "nodes": [self.store.reference(n) for n in nodes.values()],
            "upstreamEdges": upstream,
            "downstreamEdges": downstream,
        }

    def _walk(
        self,
        start: str,
        depth: int,
        links: defaultdict[str, set[str]],
        *,
        reverse: bool,
        nodes: dict[str, Entity],
    ) -> list[Json]:
        edges: list[Json] = []
        frontier = {start}
        seen = {start}
        for _ in range(depth):
            following: set[str] = set()
            for node in sorted(frontier):
                for other in sorted(links.get(node, ())):
                    entity = self.store.by_id.get(other)
                    if entity is None or entity.deleted:
                        continue
                    pair = (other, node) if reverse else (node, other)
                    edge: Json = {"fromEntity": pair[0], "toEntity": pair[1]}
                    if self.edges[pair] is not None:  # Jackson leaves null fields out
                        edge["lineageDetails"] = self.edges[pair]
                    edges.append(edge)
                    nodes[other] = entity
                    if other not in seen:
                        seen.add(other)
                        following.add(other)
            frontier = following
        return edges

    def get_edge(self, from_id: str, to_id: str) -> Reply:
        """``GET /v1/lineage/getLineageEdge/{fromId}/{toId}``: ``{"edge": {...details}}``."""
        details = self.edges.get((from_id, to_id))
        if details is None:
            raise ApiError(404, "Lineage edge not found")
        source, target = self.store.by_id[from_id], self.store.by_id[to_id]
        edge = {
            "fromEntity": self.store.reference(source),
            "toEntity": self.store.reference(target),
            **details,
        }
        return 200, {"edge": edge}

    def delete_edge(self, source: Entity, target: Entity) -> Reply:
        """``DELETE /v1/lineage/{fromEntity}/{fromId}/{toEntity}/{toId}`` (or ``/name/`` form)."""
        if (source.id, target.id) not in self.edges:
            raise ApiError(404, "Lineage edge not found")
        del self.edges[(source.id, target.id)]
        self.out[source.id].discard(target.id)
        self.into[target.id].discard(source.id)
        return 200, None

    def patch_edge(self, source: Entity, target: Entity, body: Any) -> Reply:
        """``PATCH /v1/lineage/{fromEntity}/{fromId}/{toEntity}/{toId}`` on the edge's details."""
        details = self.edges.get((source.id, target.id))
        if details is None:
            raise ApiError(404, "Lineage edge not found")
        try:
            patched = jsonpatch.apply_patch(details, body)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise bad_request(f"Invalid JSON Patch: {exc}") from exc
        self._store_edge(source, target, patched)
        return 200, None

    def forget(self, ids: list[str]) -> None:
        """Drop the edges, statuses and results of hard-deleted entities."""
        for entity_id in ids:
            for other in self.out.pop(entity_id, set()):
                self.edges.pop((entity_id, other), None)
                self.into[other].discard(entity_id)
            for other in self.into.pop(entity_id, set()):
                self.edges.pop((other, entity_id), None)
                self.out[other].discard(entity_id)
            self.statuses.pop(entity_id, None)
            self.results.pop(entity_id, None)

    # Pipeline statuses ---------------------------------------------------------------------

    def add_status(self, pipeline: Entity, body: Any) -> Reply:
        """``PUT /v1/pipelines/{fqn}/status``: one ``PipelineStatus``, keyed by its timestamp."""
        errors = schema_errors("entity/data/pipeline.json", body, "#/definitions/pipelineStatus")
        if errors:
            raise bad_request("[" + "; ".join(e[:300] for e in errors) + "]")
        tasks = {str(t["name"]) for t in pipeline.spec.get("tasks") or []}
        for status in body.get("taskStatus") or []:
            if status["name"] not in tasks:
                raise bad_request(f"Invalid task name {status['name']}")
        self.statuses[pipeline.id][int(body["timestamp"])] = body
        rendered = self.store.render(pipeline, pipeline.kind.fields)
        rendered["pipelineStatus"] = self.latest_status(pipeline)
        return 200, rendered

    def latest_status(self, pipeline: Entity) -> Json | None:
        """The status with the highest timestamp, as a pipeline's ``pipelineStatus`` field."""
        statuses = self.statuses.get(pipeline.id)
        return statuses[max(statuses)] if statuses else None

    def list_statuses(self, pipeline: Entity, query: dict[str, str]) -> Reply:
        """``GET /v1/pipelines/{fqn}/status?startTs&endTs``: a ``ResultList``, newest first."""
        return 200, _window(self.statuses.get(pipeline.id, {}), query)

    # Test case results ---------------------------------------------------------------------

    def add_result(self, case: Entity, body: Any) -> Reply:
        """``POST /v1/dataQuality/testCases/testCaseResults/{fqn}``: a ``CreateTestCaseResult``."""
        validate("api/tests/createTestCaseResult.json", body)
        stored = {"id": str(uuid.uuid4()), "testCaseFQN": case.fqn, **body}
        stored.pop("fqn", None)
        self.results[case.id][int(body["timestamp"])] = stored
        return 200, stored

    def list_results(self, case: Entity, query: dict[str, str]) -> Reply:
        """``GET /v1/dataQuality/testCases/testCaseResults/{fqn}?startTs&endTs``."""
        return 200, _window(self.results.get(case.id, {}), query)


def _window(series: dict[int, Json], query: dict[str, str]) -> Json:
    start = int(query.get("startTs", "0"))
    end = int(query.get("endTs", str(2**62)))
    rows = [series[ts] for ts in sorted(series, reverse=True) if start <= ts <= end]
    return {"data": rows, "paging": {"total": len(rows)}}
