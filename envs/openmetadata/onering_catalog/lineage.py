"""Lineage edges: add missing or changed ones, delete the ones the document no longer has.

The server's edges are read per managed entity that existed before this publish
(``GET /v1/lineage/{type}/name/{fqn}?upstreamDepth=1&downstreamDepth=0``: every edge into
it), on the thread pool. Entities created by this publish have no edges yet, so a first
publish reads none. Only OneRing's edges are compared or deleted: both ends carry
``OneRing.managed`` *and* the edge is one OneRing drew (``is_ours``: its pipeline is one of
OneRing's, or it is pipeline lineage with OneRing's "Produced by" description). An edge a
person drew, even between two of OneRing's tables, and any edge from or to another entity
are never touched (nor the detail-less edges OpenMetadata draws itself from a model's
feature sources: OneRing's own edge for the same pair replaces them, see ``edges.py``).
The edges published are the document's with the Feast views collapsed, plus one into the
model from each entity its features read (``edges.catalog_edges``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from onering_catalog import build
from onering_catalog.edges import catalog_edges, hidden_entities
from onering_catalog.state import ENTITY_TYPE
from onering_catalog.sync import Publisher

DAGSTER_PIPELINE = "onering_dagster.onering"
OUR_PIPELINE_SERVICES = ("onering_dagster", "onering_airflow")
PRODUCED_BY = "Produced by "  # the description ``build.edge_details`` writes


def is_ours(publisher: Publisher, details: dict[str, Any] | None) -> bool:
    """Whether an edge's ``lineageDetails`` mark it as drawn by OneRing."""
    details = details or {}
    pipeline = details.get("pipeline")
    if isinstance(pipeline, dict):
        ours = {ref[1] for fqn, ref in publisher.refs.items() if ref[0] == "pipeline"}
        fqn = str(pipeline.get("fullyQualifiedName") or "")
        if str(pipeline.get("id")) in ours or fqn.split(".")[0] in OUR_PIPELINE_SERVICES:
            return True
    description = str(details.get("description") or "")
    return details.get("source") == "PipelineLineage" and description.startswith(PRODUCED_BY)


def _id(value: Any) -> str:
    return str(value.get("id") if isinstance(value, dict) else value)


def _details_key(details: dict[str, Any] | None) -> tuple[Any, ...]:
    """What OneRing manages on an edge: SQL, column pairs, pipeline, source, description."""
    details = details or {}
    pipeline = details.get("pipeline")
    columns = sorted(
        (tuple(c.get("fromColumns") or []), c.get("toColumn"))
        for c in details.get("columnsLineage") or []
    )
    return (
        details.get("sqlQuery") or None,
        tuple(columns),
        _id(pipeline) if pipeline else None,
        details.get("source") or "Manual",
        details.get("description") or None,
    )


def upstream_edges(publisher: Publisher, fqn: str) -> dict[str, dict[str, Any]]:
    """``from id -> lineageDetails`` of every edge into ``fqn`` from a managed entity."""
    entity_type = publisher.refs[fqn][0]
    path = f"/lineage/{entity_type}/name/{quote(fqn, safe='')}?upstreamDepth=1&downstreamDepth=0"
    answer = publisher.api.get(path) or {}
    own = publisher.refs[fqn][1]
    edges = {}
    for edge in answer.get("upstreamEdges") or []:
        source, target = _id(edge.get("fromEntity")), _id(edge.get("toEntity"))
        details = edge.get("lineageDetails") or {}
        if target == own and source in publisher.managed_ids and is_ours(publisher, details):
            edges[source] = details
    return edges


def _node_types(answer: dict[str, Any]) -> dict[str, str]:
    nodes = [*list(answer.get("nodes") or []), answer.get("entity") or {}]
    return {str(n.get("id")): str(n.get("type")) for n in nodes if n.get("id")}


def _say_hidden(publisher: Publisher, edges: list[dict[str, Any]]) -> None:
    """One warning naming the Feast views and the edges drawn through them."""
    views = [e["fqn"] for e in hidden_entities(publisher.doc)]
    if views:
        through = sum(1 for e in edges if e.get("via"))
        publisher.summary.warn(
            f"{len(views)} Feast feature views are not OpenMetadata entities (it has no "
            f"feature-store entity): {', '.join(views)}; {through} edges are drawn through "
            "them, and their features are the model's mlFeatures"
        )


def sync_edges(publisher: Publisher) -> None:
    """Make the managed edges on the server equal the document's edges."""
    keys = {e["key"]: e for e in publisher.doc["entities"]}
    pipeline = publisher.refs.get(DAGSTER_PIPELINE)
    desired: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {}
    edges = catalog_edges(publisher.doc)
    _say_hidden(publisher, edges)
    for edge in edges:
        source, target = keys.get(edge["from"]), keys.get(edge["to"])
        if not source or not target:
            publisher.summary.warn(f"edge {edge['from']} -> {edge['to']}: an end is not an entity")
            continue
        if source["fqn"] not in publisher.refs or target["fqn"] not in publisher.refs:
            publisher.summary.warn(
                f"edge {edge['from']} -> {edge['to']}: not published, an end is not OneRing's"
            )
            continue
        src, dst = publisher.refs[source["fqn"]], publisher.refs[target["fqn"]]
        details = build.edge_details(
            edge, source["fqn"], target["fqn"], pipeline[1] if pipeline else None
        )
        desired.setdefault(target["fqn"], {})[src[1]] = ((src, dst), details)

    targets = [
        e["fqn"]
        for e in publisher.doc["entities"]
        if e["fqn"] not in publisher.created and e["fqn"] in publisher.refs
    ]
    current = dict(
        zip(
            targets,
            publisher.parallel(lambda f: upstream_edges(publisher, f), targets),
            strict=True,
        )
    )
    # Ids of every managed entity: written ones, and the stale ones still on the server (an
    # edge from a model no longer in the document is deleted as a model's, not a table's).
    by_id = {
        str(e.get("id")): (ENTITY_TYPE[publisher.collection_of[fqn]], fqn)
        for fqn, e in publisher.current.items()
    }
    by_id.update({ref[1]: (ref[0], fqn) for fqn, ref in publisher.refs.items()})
    for entity in publisher.doc["entities"]:
        fqn = entity["fqn"]
        if fqn not in publisher.refs:
            continue
        have = current.get(fqn, {})
        for source_id, (ends, details) in sorted(desired.get(fqn, {}).items()):
            label = f"edge {by_id.get(source_id, ('', source_id))[1]} -> {fqn}"
            if source_id in have and _details_key(have[source_id]) == _details_key(details):
                publisher.summary.done("unchanged", label)
                continue
            publisher.api.add_lineage(build.edge_request(details, *ends), label)
            publisher.summary.done("updated" if source_id in have else "created", label)
        for source_id in sorted(set(have) - set(desired.get(fqn, {}))):
            source_type = by_id.get(source_id, ("table", source_id))[0]
            own_type, own_id = publisher.refs[fqn]
            path = f"/lineage/{source_type}/{source_id}/{own_type}/{own_id}"
            publisher.api.write("DELETE", path)
            publisher.summary.done("deleted", f"edge {source_id} -> {fqn}")


def delete_edges_of(publisher: Publisher, fqn: str, entity: dict[str, Any], kind: str) -> None:
    """Delete OneRing's edges between a stale managed entity and another managed one."""
    path = f"/lineage/{kind}/name/{quote(fqn, safe='')}?upstreamDepth=1&downstreamDepth=1"
    answer = publisher.api.get(path) or {}
    types = _node_types(answer)
    own = str(entity.get("id"))
    edges = list(answer.get("upstreamEdges") or []) + list(answer.get("downstreamEdges") or [])
    seen = set()
    for edge in edges:
        source, target = _id(edge.get("fromEntity")), _id(edge.get("toEntity"))
        other = target if source == own else source
        if own not in (source, target) or other not in publisher.managed_ids:
            continue
        if not is_ours(publisher, edge.get("lineageDetails")):
            continue
        if (source, target) in seen:
            continue
        seen.add((source, target))
        source_type = kind if source == own else types.get(source, "table")
        target_type = kind if target == own else types.get(target, "table")
        publisher.api.write("DELETE", f"/lineage/{source_type}/{source}/{target_type}/{target}")
        publisher.summary.done("deleted", f"edge {source} -> {target} (of {fqn})")
