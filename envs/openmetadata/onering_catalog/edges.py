"""The document's edges as OpenMetadata draws them: through Feast views, and into the model.

OpenMetadata 2.0.7 has no feature-store entity, so a Feast view (``featureView``) is not
published. Its edges are collapsed through it: ``features/route_stats_source`` →
``features/route_stats`` → ``ml/training_set`` becomes ``onering_lake.features.route_stats``
→ ``onering_lake.ml.training_set``, with the column pairs composed through the view and the
view named in the edge's description. Its features still reach the catalog as the model's
``mlFeatures``, whose sources are those containers' columns.

The model also gets an edge from each entity its features are read from (the ``sources`` of
``mlmodel.features``), with a column pair per feature (``carrier_late_rate_28d`` ←
``onering_lake.features.carrier_stats.carrier_late_rate_28d``): OpenMetadata draws these
itself from the feature sources when it creates a model, without details, and OneRing's
edge replaces that one so the edge is managed like the others.

Pure functions of the document: no HTTP here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

HIDDEN = frozenset({"featureView"})  # entity kinds OpenMetadata has no entity for


def hidden_entities(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The document's entities that are not published (the Feast views)."""
    return [e for e in document["entities"] if e["entity"] in HIDDEN]


def _compose(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs of ``second`` with their sources traced back through ``first``."""
    back = {p["to"]: set(p["from"]) for p in first}
    pairs = []
    for pair in second:
        sources = set().union(*(back.get(c, set()) for c in pair["from"]))
        if sources:
            pairs.append({"to": pair["to"], "from": sorted(sources)})
    return pairs


def _through(first: dict[str, Any], second: dict[str, Any], via: str) -> dict[str, Any]:
    return {
        "from": first["from"],
        "to": second["to"],
        "columns": _compose(first["columns"], second["columns"]),
        "sql": second.get("sql"),
        "pipelines": second.get("pipelines", []),
        "via": [*first.get("via", []), via, *second.get("via", [])],
    }


def _collapse(edges: list[dict[str, Any]], node: str, fqn: str) -> list[dict[str, Any]]:
    """``edges`` without ``node``: each edge into it joined with each edge out of it."""
    ins = [e for e in edges if e["to"] == node]
    outs = [e for e in edges if e["from"] == node]
    kept = [e for e in edges if node not in (e["from"], e["to"])]
    return kept + [_through(a, b, fqn) for a in ins for b in outs if a["from"] != b["to"]]


def _feature_edges(document: dict[str, Any]) -> list[dict[str, Any]]:
    """An edge into each model from every entity its features are read from."""
    keys = {e["fqn"]: e["key"] for e in document["entities"]}
    producers = {e["to"]: e.get("pipelines", []) for e in document["edges"]}
    out = []
    for model in (e for e in document["entities"] if e["entity"] == "mlmodel"):
        pairs: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for feature in (model.get("mlmodel") or {}).get("features", []):
            for source in feature.get("sources", []):
                if source["entity"] in keys:
                    pair = {"to": feature["name"], "from": [source["column"]]}
                    pairs[keys[source["entity"]]].append(pair)
        for key, columns in sorted(pairs.items()):
            out.append(
                {
                    "from": key,
                    "to": model["key"],
                    "columns": columns,
                    "sql": None,
                    "pipelines": producers.get(model["key"], []),
                    "features": [p["to"] for p in columns],
                }
            )
    return out


def _merge(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One edge per (from, to): OpenMetadata keeps one edge per pair of entities."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for edge in edges:
        key = (edge["from"], edge["to"])
        if key not in merged:
            merged[key] = {**edge, "columns": [dict(p) for p in edge["columns"]]}
            continue
        have = merged[key]
        sources = {p["to"]: set(p["from"]) for p in have["columns"]}
        for pair in edge["columns"]:
            sources.setdefault(pair["to"], set()).update(pair["from"])
        have["columns"] = [{"to": c, "from": sorted(s)} for c, s in sorted(sources.items())]
        have["sql"] = have.get("sql") or edge.get("sql")
        seen = {(p["pipeline"], p["task"]) for p in have.get("pipelines", [])}
        have["pipelines"] = have.get("pipelines", []) + [
            p for p in edge.get("pipelines", []) if (p["pipeline"], p["task"]) not in seen
        ]
        for extra in ("via", "features"):
            values = sorted({*have.get(extra, []), *edge.get(extra, [])})
            if values:
                have[extra] = values
    return list(merged.values())


def catalog_edges(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The edges to publish, between published entities only, one per pair of entities.

    Each has the document edge's keys (``from``, ``to``, ``columns``, ``sql``,
    ``pipelines``), plus ``via`` (the Feast views it was drawn through) and ``features`` (the
    model features it feeds) when there are any.
    """
    edges = [dict(e) for e in document["edges"]]
    for view in sorted(hidden_entities(document), key=lambda e: e["key"]):
        edges = _collapse(edges, view["key"], view["fqn"])
    edges += _feature_edges(document)
    return _merge(edges)
