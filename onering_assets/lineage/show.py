"""`onering lineage show`: an asset's table and column lineage as a tree, from the document.

Printed from the same lineage document the catalog publishers send, so what a terminal
shows is what OpenMetadata and OpenLineage consumers get.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from onering_assets.lineage.document import column_names

Direction = Literal["upstream", "downstream", "both"]


class _Graph:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.entities = {e["key"]: e for e in document["entities"]}
        self.up: dict[str, list[Mapping[str, Any]]] = {}
        self.down: dict[str, list[Mapping[str, Any]]] = {}
        for edge in document["edges"]:
            self.up.setdefault(edge["to"], []).append(edge)
            self.down.setdefault(edge["from"], []).append(edge)

    def label(self, key: str) -> str:
        entity = self.entities[key]
        return f"{key}  ({entity['entity']} {entity['fqn']})"


def _column_lines(edge: Mapping[str, Any], upstream: bool, columns: set[str] | None) -> list[str]:
    """``column ← source columns`` of an edge (its ``to`` side on the left, as in SQL).

    Limited to the pairs that touch ``columns`` of the asset nearer the root.
    """
    lines = []
    for pair in edge["columns"]:
        near = {pair["to"]} if upstream else set(pair["from"])
        if columns is None or near & columns:
            lines.append(f"{pair['to']} ← {', '.join(pair['from'])}")
    return lines


def _followed(edge: Mapping[str, Any], upstream: bool, columns: set[str] | None) -> set[str] | None:
    """The columns to follow past ``edge`` when tracing columns (``None``: all)."""
    if columns is None:
        return None
    if upstream:
        return {s for p in edge["columns"] if p["to"] in columns for s in p["from"]}
    return {p["to"] for p in edge["columns"] if set(p["from"]) & columns}


def _tree(
    graph: _Graph,
    key: str,
    *,
    upstream: bool,
    with_columns: bool,
    columns: set[str] | None,
    prefix: str = "",
    seen: frozenset[str] = frozenset(),
) -> list[str]:
    edges = (graph.up if upstream else graph.down).get(key, [])
    if columns is not None:
        edges = [e for e in edges if _followed(e, upstream, columns)]
    lines = []
    for n, edge in enumerate(edges):
        last = n == len(edges) - 1
        other = edge["from"] if upstream else edge["to"]
        writes = ""
        if edge.get("writes"):  # a writer, not a reader: the stream into Bronze flights
            writes = (
                f"  writes its rows into {edge['to']}" if upstream else f"  {key} writes into it"
            )
        lines.append(prefix + ("└── " if last else "├── ") + graph.label(other) + writes)
        inner = prefix + ("    " if last else "│   ")
        if with_columns:
            lines += [inner + "  " + line for line in _column_lines(edge, upstream, columns)]
        if other in seen:  # a cycle cannot be declared, but never loop on one
            continue
        lines += _tree(
            graph,
            other,
            upstream=upstream,
            with_columns=with_columns,
            columns=_followed(edge, upstream, columns),
            prefix=inner,
            seen=seen | {key},
        )
    return lines


def lineage_lines(
    document: Mapping[str, Any],
    key: str,
    *,
    direction: Direction = "both",
    with_columns: bool = False,
    column: str | None = None,
) -> list[str]:
    """The lines `onering lineage show` prints for asset ``key``.

    Args:
        document: the lineage document.
        key: an asset key present in the document.
        direction: which side of the asset to print.
        with_columns: print each edge's column pairs (``to ← from``).
        column: trace one column of ``key`` only (implies ``with_columns``); a model's
            columns are its features.

    Raises:
        KeyError: ``column`` is not a column of the asset.
    """
    graph = _Graph(document)
    names = set(column_names(graph.entities[key]))
    if column is not None and column not in names:
        raise KeyError(column)
    columns = {column} if column else None
    lines = [graph.label(key)]
    for side in ("upstream", "downstream"):
        if direction not in (side, "both"):
            continue
        tree = _tree(
            graph,
            key,
            upstream=side == "upstream",
            with_columns=with_columns or column is not None,
            columns=columns,
        )
        lines.append(f"{side}:")
        if not tree and column is not None and side == "upstream" and graph.up.get(key):
            tree = [f"    (none: {column} reads no column of another table, e.g. count())"]
        lines += tree or ["    (none)"]
    return lines
