"""URL routing of the loopback OpenMetadata server: ``/api/v1/...`` paths to handlers.

Paths not listed here answer Jersey's ``404 HTTP 404 Not Found``, so a client calling an
endpoint this server does not implement fails loudly instead of passing silently.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.catalog.om_api import EntityApi, Reply, split_collection
from tests.catalog.om_graph import Graph
from tests.catalog.om_model import KIND_BY_TYPE, ApiError, Kind
from tests.catalog.om_store import Json

Query = dict[str, str]


def _not_found() -> ApiError:
    return ApiError(404, "HTTP 404 Not Found")


def _not_allowed() -> ApiError:
    return ApiError(405, "HTTP 405 Method Not Allowed")


def dispatch(
    api: EntityApi, graph: Graph, method: str, seg: list[str], query: Query, body: Any
) -> Reply:
    """Answer one authenticated request for ``/api/v1/<seg...>``.

    Raises:
        ApiError: OpenMetadata's error for the request (404 for an unknown path).
    """
    if seg[:1] == ["lineage"]:
        return _lineage(graph, method, seg[1:], query, body)
    special = _series(api, graph, method, seg, query, body)
    if special is not None:
        return special
    found = split_collection(seg)
    if found is None:
        raise _not_found()
    kind, rest = found
    if not rest:
        if method in ("PUT", "POST"):
            status, answer = api.put(kind, body, post=method == "POST")
            if kind.type == "mlmodel" and status == 201:
                graph.add_feature_lineage(api.store.by_id[answer["id"]])
            return status, answer
        if method == "GET":
            return api.list(kind, query)
        raise _not_allowed()
    by, key = ("name", rest[1]) if rest[0] == "name" and len(rest) == 2 else ("id", rest[0])
    if len(rest) > (2 if by == "name" else 1) or (by == "id" and not is_uuid(key)):
        raise _not_found()
    return _one(api, graph, kind, method, (by, key), query, body)


def _one(
    api: EntityApi,
    graph: Graph,
    kind: Kind,
    method: str,
    where: tuple[str, str],
    query: Query,
    body: Any,
) -> Reply:
    by, key = where
    if method == "GET":
        status, entity = api.get(kind, key, by, query)
        _add_series(api, graph, entity, api.fields(kind, query))
        return status, entity
    if method == "PATCH":
        return api.patch(kind, key, by, body)
    if method == "DELETE":
        return _delete(api, graph, kind, where, query)
    raise _not_allowed()


def _series(
    api: EntityApi, graph: Graph, method: str, seg: list[str], query: Query, body: Any
) -> Reply | None:
    """Test case results, executable test suites and pipeline statuses; None for other paths."""
    store = api.store
    if seg[:3] == ["dataQuality", "testCases", "testCaseResults"] and len(seg) == 4:
        case = store.get("testCase", seg[3])
        if method == "POST":
            return graph.add_result(case, body)
        return graph.list_results(case, query) if method == "GET" else None
    suite = KIND_BY_TYPE["testSuite"]
    if seg[:2] == ["dataQuality", "testSuites"] and seg[2:3] in (["executable"], ["basic"]):
        if method == "PUT" and len(seg) == 3:
            return api.put(suite, body, basic_suite=True)
        if method == "DELETE" and len(seg) == 4:
            return _delete(api, graph, suite, ("id", seg[3]), query)
    if seg[:1] == ["pipelines"] and len(seg) in (3, 4) and seg[2] == "status":
        pipeline = store.get("pipeline", seg[1])
        if method == "PUT" and len(seg) == 3:
            return graph.add_status(pipeline, body)
        if method == "PUT" and seg[3:] == ["bulk"] and isinstance(body, list) and body:
            return [graph.add_status(pipeline, status) for status in body][-1]
        if method == "GET" and len(seg) == 3:
            return graph.list_statuses(pipeline, query)
    return None


def _delete(
    api: EntityApi, graph: Graph, kind: Kind, where: tuple[str, str], query: Query
) -> Reply:
    reply, touched = api.delete(kind, where[1], where[0], query)
    if query.get("hardDelete") == "true":
        graph.forget(touched)
    return reply


def _add_series(api: EntityApi, graph: Graph, body: Json, fields: frozenset[str]) -> None:
    entity = api.store.by_id[body["id"]]
    if entity.kind.type == "pipeline" and "pipelineStatus" in fields:
        body["pipelineStatus"] = graph.latest_status(entity)
    if entity.kind.type == "testCase" and "testCaseResult" in fields:
        results = graph.results.get(entity.id)
        body["testCaseResult"] = results[max(results)] if results else None


def _lineage(graph: Graph, method: str, seg: list[str], query: Query, body: Any) -> Reply:
    store = graph.store
    if method == "PUT" and not seg:
        return graph.add_lineage(body)
    if method == "GET":
        return _lineage_get(graph, seg, query)
    if len(seg) == 6 and method == "PUT":
        return graph.add_lineage_by_name(seg, body)
    if len(seg) == 6:
        source, target = graph.by_name(seg)
    elif len(seg) == 4 and is_uuid(seg[1]) and is_uuid(seg[3]):
        source, target = store.get(seg[0], seg[1], by="id"), store.get(seg[2], seg[3], by="id")
    else:
        raise _not_found()
    if method == "DELETE":
        return graph.delete_edge(source, target)
    if method == "PATCH":
        return graph.patch_edge(source, target, body)
    raise _not_allowed()


def _lineage_get(graph: Graph, seg: list[str], query: Query) -> Reply:
    if seg[:1] == ["getLineageEdge"]:
        if len(seg) == 3:
            return graph.get_edge(seg[1], seg[2])
        source, target = graph.by_name(seg[1:])
        return graph.get_edge(source.id, target.id)
    if len(seg) == 3 and seg[1] == "name":
        return graph.get_lineage(graph.store.get(seg[0], seg[2]), query)
    if len(seg) == 2 and is_uuid(seg[1]):
        return graph.get_lineage(graph.store.get(seg[0], seg[1], by="id"), query)
    raise _not_found()


def is_uuid(text: str) -> bool:
    """Whether a path segment is a UUID (OpenMetadata's ``{id}`` path parameters)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
