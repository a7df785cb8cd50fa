"""Feast objects (entities, file sources, feature views) built from ``views.yml``.

Imports Feast: only steps, retrieval and ``feast_repo/repo.py`` import this module, never
the definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType, String

from onering_assets.features.views import CREATED_TIMESTAMP, EVENT_TIMESTAMP, View, Views

DTYPES: dict[str, PrimitiveFeastType] = {"Int64": Int64, "Float64": Float64, "String": String}


def entities(views: Views) -> dict[str, Entity]:
    """One Feast entity per declared entity (every join key is a string)."""
    return {
        e.name: Entity(
            name=e.name,
            join_keys=[e.join_key],
            value_type=ValueType.STRING,
            description=e.description,
        )
        for e in views.entities
    }


def file_source(view: View, path: str, s3_endpoint_url: str | None = None) -> FileSource:
    """The view's offline rows: one Parquet file (``path`` may be relative to the repo)."""
    return FileSource(
        name=f"{view.name}_source",
        path=path,
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        s3_endpoint_override=s3_endpoint_url,
        description=f"Offline rows of {view.name}, computed from {view.sql_path.name}.",
    )


def feature_view(view: View, entity: Mapping[str, Entity], source: FileSource) -> FeatureView:
    """The Feast view: keys and features typed as declared, ``ttl`` as declared."""
    keys = [Field(name=e.join_key, dtype=String) for e in view.entities]
    features = [
        Field(name=f.name, dtype=DTYPES[f.dtype], description=f.description) for f in view.features
    ]
    return FeatureView(
        name=view.name,
        entities=[entity[e.name] for e in view.entities],
        ttl=timedelta(hours=view.ttl_hours),
        schema=keys + features,
        source=source,
        online=True,
        description=view.description,
        owner=view.owners[0] if view.owners else "",
        tags={"owners": ",".join(view.owners), "sql": view.sql_path.name},
    )


def repo_objects(
    views: Views, paths: Mapping[str, str], s3_endpoint_url: str | None = None
) -> list[Entity | FeatureView]:
    """Every entity and view, each view reading its Parquet file at ``paths[view]``."""
    entity = entities(views)
    return [
        *entity.values(),
        *(
            feature_view(v, entity, file_source(v, paths[v.name], s3_endpoint_url))
            for v in views.views
        ),
    ]
