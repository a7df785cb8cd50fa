"""The feature build as plain steps, called by the assets and by ``bench/ml.py`` alike.

compute (the view's SQL over Silver in ClickHouse) → write (Parquet in the lake) → apply
(Feast registry) → materialize (the newest row per entity into the online store).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa

from onering_assets.errors import ConfigError
from onering_assets.features.views import EVENT_TIMESTAMP, View, Views
from onering_assets.resources.lake import LakeResource

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client
    from feast import FeatureStore

LAYER = "features"
ARROW_TYPES = {"Int64": pa.int64(), "Float64": pa.float64(), "String": pa.string()}
TIMESTAMP = pa.timestamp("us", tz="UTC")


def _timestamps(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """ClickHouse DateTime arrives as seconds (uint32); Feast wants tz-aware UTC."""
    if pa.types.is_timestamp(column.type):
        return column.cast(TIMESTAMP)
    return column.cast(pa.int64()).cast(pa.timestamp("s", tz="UTC")).cast(TIMESTAMP)


def shape(view: View, data: pa.Table, created: datetime) -> pa.Table:
    """The offline rows in declared order and types, each stamped ``created``.

    Raises:
        ConfigError: the SQL does not produce a declared column.
    """
    missing = [
        c
        for c in (*view.join_keys, EVENT_TIMESTAMP, *view.feature_names)
        if c not in data.column_names
    ]
    if missing:
        raise ConfigError(
            f"{view.sql_path}: the SELECT does not produce declared column(s) {', '.join(missing)}."
        )
    arrays = [data[k].cast(pa.string()) for k in view.join_keys]
    arrays.append(_timestamps(data[EVENT_TIMESTAMP]))
    arrays += [data[f.name].cast(ARROW_TYPES[f.dtype]) for f in view.features]
    arrays.append(pa.array([created] * data.num_rows, TIMESTAMP))
    return pa.table(arrays, names=list(view.columns))


def compute(client: Client, view: View, created: datetime | None = None) -> pa.Table:
    """Run the view's SQL over Silver and shape the result into offline rows."""
    data = client.query_arrow(view.sql)
    return shape(view, data, created or datetime.now(UTC))


def write(lake: LakeResource, view: View, rows: pa.Table) -> str:
    """Replace the view's offline file atomically; return where it is."""
    return lake.write(LAYER, view.name, None, rows)


def read(lake: LakeResource, view: View) -> pa.Table:
    """The view's published offline rows."""
    return lake.read(LAYER, view.name)


def source_path(lake: LakeResource, view: View, repo_dir: str) -> str:
    """Where Feast reads the view's rows: relative to the Feast folder for a local lake.

    Relative, so a state folder copied elsewhere reads its own files, not the original's.
    """
    parsed = urlparse(lake.url)
    file = LakeResource.relative_path(LAYER, view.name, None)
    if parsed.scheme == "file":
        return os.path.relpath(f"{parsed.path.rstrip('/')}/{file}", repo_dir)
    return f"{lake.url.rstrip('/')}/{file}"


def apply(store: FeatureStore, views: Views, lake: LakeResource) -> None:
    """Register every entity and view (idempotent: an unchanged view is left alone)."""
    from onering_assets.features.objects import repo_objects

    repo_dir = str(store.config.repo_path)
    paths = {v.name: source_path(lake, v, repo_dir) for v in views.views}
    objects: list[Any] = repo_objects(views, paths, lake.s3_endpoint_url)
    store.apply(objects)


def materialize(store: FeatureStore, view: View, rows: pa.Table) -> tuple[datetime, datetime]:
    """Write the newest row per entity of ``rows``' time span to the online store."""
    stamps = rows.column(EVENT_TIMESTAMP).to_pandas()
    start = stamps.min().to_pydatetime()
    end = stamps.max().to_pydatetime() + timedelta(seconds=1)
    store.materialize(start_date=start, end_date=end, feature_views=[view.name])
    return start, end


def build_features(
    client: Client, lake: LakeResource, store: FeatureStore, views: Views
) -> dict[str, int]:
    """Every view end to end, outside Dagster (scripts, benchmarks): rows written per view.

    E.g. on a local state::

        settings = Settings(profile="local", state_dir=Path(".onering"))
        lake = LakeResource(url=settings.lake_dir.as_uri())
        with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
            build_features(client, lake, feature_store(settings), load_views())
    """
    computed = {view.name: compute(client, view) for view in views.views}
    for view in views.views:
        write(lake, view, computed[view.name])
    apply(store, views, lake)
    for view in views.views:
        materialize(store, view, computed[view.name])
    return {name: rows.num_rows for name, rows in computed.items()}
