"""A whole publish, phase by phase; a failed phase stops it and names what was not written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onering_catalog.api import Api, CatalogError
from onering_catalog.checks import sync_checks
from onering_catalog.lineage import delete_edges_of, sync_edges
from onering_catalog.mlmodels import sync_models
from onering_catalog.runs import publish_results, publish_statuses
from onering_catalog.state import ENTITY_TYPE
from onering_catalog.summary import Summary
from onering_catalog.sync import Publisher

DOCUMENT_VERSION = 1
REQUIRED = ("version", "services", "entities", "pipelines", "edges")


class DocumentError(Exception):
    """The lineage document cannot be published as it is (not retryable)."""


def check_document(document: Any) -> dict[str, Any]:
    """The document, if it is one this publisher understands.

    Raises:
        DocumentError: not an object, another version, or a required part missing.
    """
    if not isinstance(document, dict):
        raise DocumentError("the lineage document is not a JSON object")
    if document.get("version") != DOCUMENT_VERSION:
        raise DocumentError(
            f"lineage document version {document.get('version')!r}; this publisher reads "
            f"version {DOCUMENT_VERSION}"
        )
    missing = [k for k in REQUIRED if not isinstance(document.get(k), list | int)]
    if missing:
        raise DocumentError(f"the lineage document lacks {', '.join(missing)}")
    keys = {e.get("key") for e in document["entities"]}
    for edge in document["edges"]:
        if edge.get("from") not in keys or edge.get("to") not in keys:
            raise DocumentError(f"edge {edge.get('from')} -> {edge.get('to')} names no entity")
    return document


def _remove_stale(publisher: Publisher) -> None:
    for fqn, entity in publisher.stale():
        kind = ENTITY_TYPE[publisher.collection_of[fqn]]
        delete_edges_of(publisher, fqn, entity, kind)
    publisher.delete_stale(publisher.stale())


def phases(publisher: Publisher) -> list[tuple[str, Callable[[], None]]]:
    """The publish's phases in order, each named for the summary."""
    return [
        ("classification OneRing, its tags and test definition", publisher.prerequisites),
        ("services", publisher.services),
        ("databases, schemas and the lake's root containers", publisher.containers_of_databases),
        ("owners", publisher.resolve_owners),
        ("reading managed tables, containers, pipelines and models", publisher.read_current),
        ("pipelines", publisher.pipelines),
        ("tables and containers", publisher.entities),
        ("ML models", lambda: sync_models(publisher)),
        ("lineage edges", lambda: sync_edges(publisher)),
        ("removing assets no longer in the document", lambda: _remove_stale(publisher)),
        ("test suites and test cases", lambda: sync_checks(publisher)),
        ("pipeline statuses of runs", lambda: publish_statuses(publisher)),
        ("check results of runs", lambda: publish_results(publisher)),
    ]


def publish(api: Api, document: dict[str, Any], *, workers: int = 8) -> tuple[Summary, bool]:
    """Publish ``document``; returns the summary and whether a failure is retryable.

    Never raises a ``CatalogError``: it ends the publish and lands in ``summary.errors``
    with the phases not finished in ``summary.not_written``.
    """
    summary = Summary()
    publisher = Publisher(api, document, summary, workers)
    steps = phases(publisher)
    for index, (name, step) in enumerate(steps):
        try:
            step()
        except CatalogError as err:
            summary.errors.append(f"{name}: {api.scrub(str(err))}")
            summary.not_written += [n for n, _ in steps[index:]]
            return summary, err.retryable
    return summary, False
