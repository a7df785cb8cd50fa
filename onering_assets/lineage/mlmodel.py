"""The model entity's ML details: its features and where each one comes from.

A catalog (OpenMetadata's ``MlModel``) lists a model's features, each with its data type and
its sources. OneRing's features are Feast views whose offline rows are computed into the lake
by ``features/<view>_source``: each feature's source is that container's column of the same
name. Request fields (carrier, origin, dest, the departure's hour and weekday) are features
too, sourced from ``silver/flights``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REQUEST_SOURCE = "silver/flights"
# Request fields derived from sched_dep_at rather than read as a column.
DERIVED_FROM = {"dep_hour": "sched_dep_at", "day_of_week": "sched_dep_at"}


def _value(meta: Mapping[str, Any], name: str) -> Any:
    value = meta.get(name)
    return getattr(value, "data", getattr(value, "value", value))


def model_details(meta: Mapping[str, Any], fqns: Mapping[str, str]) -> dict[str, Any]:
    """``algorithm``, ``target`` and ``features`` (name, type, sources) of a model spec.

    Args:
        meta: the model asset's metadata (``model_inputs``, ``feature_refs``).
        fqns: entity key -> fully qualified name, for the features' sources.
    """
    refs = {
        ref.split(":", 1)[1]: ref.split(":", 1)[0] for ref in _value(meta, "feature_refs") or []
    }
    features = []
    for column in _value(meta, "model_inputs") or []:
        name = column["name"]
        if name in refs:
            source, source_column = f"features/{refs[name]}_source", name
        else:
            source, source_column = REQUEST_SOURCE, DERIVED_FROM.get(name, name)
        features.append(
            {
                "name": name,
                "type": "categorical" if column["type"] == "string" else "numerical",
                "view": refs.get(name),
                "sources": [{"entity": fqns[source], "column": source_column}]
                if source in fqns
                else [],
            }
        )
    return {
        "algorithm": _value(meta, "algorithm") or "LogisticRegression",
        "target": _value(meta, "label") or "late",
        "features": features,
    }
