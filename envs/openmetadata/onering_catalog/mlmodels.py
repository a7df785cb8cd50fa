"""The MLflow model as an OpenMetadata ``MlModel``: algorithm, target, features and sources.

Each feature of the document's ``mlmodel`` block becomes an ``mlFeature`` (``numerical`` or
``categorical``) whose ``featureSources`` name the column it is read from and reference the
entity holding it (``dataSource``: the feature view's offline rows in the lake, or
``silver.flights`` for the request fields). The model is written after the tables and
containers, whose ids those references need. Ownership as for the other entities: the tag
``OneRing.managed`` and ``sourceHash``; another's model at OneRing's name is left alone.
"""

from __future__ import annotations

from typing import Any

from onering_catalog import build
from onering_catalog.datatypes import CLICKHOUSE, POSTGRES, column_type
from onering_catalog.sync import Publisher

COLLECTION = "mlmodels"
# OpenMetadata's data types -> a feature source's ``dataType`` (``featureSourceDataType``).
SOURCE_TYPES = {
    **dict.fromkeys(("STRING", "VARCHAR", "CHAR", "TEXT", "UUID", "ENUM"), "string"),
    **dict.fromkeys(("TINYINT", "SMALLINT", "INT", "BIGINT", "LARGEINT", "UINT"), "integer"),
    **dict.fromkeys(("FLOAT", "DOUBLE", "DECIMAL", "NUMERIC", "MONEY"), "number"),
    **dict.fromkeys(("DATETIME", "TIMESTAMP", "TIMESTAMPZ"), "timestamp"),
    **dict.fromkeys(("MAP", "STRUCT", "JSON", "TUPLE"), "object"),
    "DATE": "date",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
}


def source_type(native: str, layer: str) -> str | None:
    """A source column's ``featureSourceDataType`` from its native type (``None``: unknown)."""
    dialect = POSTGRES if layer == "gold" else CLICKHOUSE
    return SOURCE_TYPES.get(column_type(native, dialect).data_type)


def _feature_text(feature: dict[str, Any], views: dict[str, dict[str, str]]) -> str:
    view = feature.get("view")
    if view:
        own = views.get(view, {}).get(feature["name"], "")
        return f"{own} Served by the Feast view {view}.".strip()
    columns = [s["column"] for s in feature.get("sources", [])]
    if columns and columns != [feature["name"]]:
        return f"Derived from the request's {', '.join(columns)}."
    return "A field of the prediction request."


def mlmodel_fields(
    document: dict[str, Any],
    entity: dict[str, Any],
    owners: list[dict[str, str]],
    refs: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    """The ``CreateMlModelRequest`` of the document's model entity, as plain JSON.

    Args:
        document: the lineage document (for the sources' column types and the views).
        entity: the model entity, with its ``mlmodel`` block.
        owners: the owners OpenMetadata knows, as references.
        refs: ``fqn -> (entity type, id)`` of the published entities; a source not among them
            (not OneRing's in OpenMetadata) keeps its name and type but no ``dataSource``.
    """
    by_fqn = {e["fqn"]: e for e in document["entities"]}
    views = {
        e["name"]: {c["name"]: c["description"] for c in e["columns"]}
        for e in document["entities"]
        if e["entity"] == "featureView"
    }
    details = entity.get("mlmodel") or {}
    features = []
    for feature in details.get("features", []):
        sources = []
        for source in feature.get("sources", []):
            held = by_fqn.get(source["entity"], {"columns": [], "layer": ""})
            native = {c["name"]: c["type"] for c in held["columns"]}.get(source["column"])
            ref = refs.get(source["entity"])
            sources.append(
                build.compact(
                    {
                        "name": source["column"],
                        "dataType": source_type(native, held["layer"]) if native else None,
                        # The FQN too: OpenMetadata names the source ``<its FQN>.<column>``.
                        "dataSource": {
                            "id": ref[1],
                            "type": ref[0],
                            "fullyQualifiedName": source["entity"],
                        }
                        if ref
                        else None,
                    }
                )
            )
        features.append(
            build.compact(
                {
                    "name": feature["name"],
                    "dataType": feature["type"],
                    "description": _feature_text(feature, views),
                    "featureSources": sources or None,
                }
            )
        )
    return {
        "name": entity["name"],
        "service": entity["service"],
        "description": entity.get("description") or None,
        "algorithm": details.get("algorithm") or "mlmodel",
        "target": details.get("target"),
        "mlFeatures": features or None,
        "owners": owners or None,
        "tags": build.tag_dicts(entity.get("layer")),
        "sourceHash": build.fingerprint(entity),
    }


def mlmodel_request(fields: dict[str, Any]) -> Any:
    """``mlmodel_fields`` as a ``CreateMlModelRequest``."""
    from metadata.generated.schema.api.data.createMlModel import CreateMlModelRequest

    return CreateMlModelRequest.model_validate(build.compact(fields))


def sync_models(publisher: Publisher) -> None:
    """Create or update each model of the document (after the entities its features read)."""
    for entity in publisher.doc["entities"]:
        if entity["entity"] != "mlmodel":
            continue
        fqn = entity["fqn"]
        if fqn in publisher.foreign:
            publisher.refuse("mlmodel", fqn, publisher.foreign[fqn])
            continue
        owners = [r for o in entity.get("owners") or [] if (r := publisher.owners.get(o))]
        fields = mlmodel_fields(publisher.doc, entity, owners, publisher.refs)
        lost = sorted(
            {
                s["entity"]
                for f in (entity.get("mlmodel") or {}).get("features", [])
                for s in f.get("sources", [])
                if s["entity"] not in publisher.refs
            }
        )
        if lost:
            publisher.summary.warn(
                f"mlmodel {fqn}: feature sources {', '.join(lost)} are not OneRing's in "
                "OpenMetadata: named without a reference"
            )
        answer = publisher.upsert(
            COLLECTION,
            fqn,
            lambda fields=fields: mlmodel_request(fields),
            publisher.current.get(fqn),
            "mlmodel",
            desired=fields,
        )
        publisher.remember(fqn, "mlmodel", answer)
