"""Feast's file offline store with a point-in-time join that scales and keeps every row.

Feast 0.67's file (dask) store joins each entity row with its key's whole history before
filtering by time (quadratic: 250 s for 10,000 flights, and the year does not fit in
memory), and drops an entity row outright when a view has rows for its key but none
within the ttl. This store keeps everything else of the file store (sources, schema
inference, materialization) and answers ``get_historical_features`` with
``onering_assets.features.pit`` (one sorted ``merge_asof`` per view). It also reads the
rows it materializes with pyarrow (local or S3, through the source's endpoint), where the
file store's dask reader needs ``s3fs`` for S3. Feature views, references and the
``RetrievalJob`` are Feast's own.

Configured in ``feature_store.yaml`` as
``offline_store: {type: onering_assets.features.offline.PointInTimeFileOfflineStore}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import dask.dataframe as dd
import pandas as pd
import pyarrow.parquet as pq
from feast.data_source import DataSource
from feast.feature_view import DUMMY_ENTITY_ID, DUMMY_ENTITY_VAL, FeatureView
from feast.infra.offline_stores.dask import (
    DaskOfflineStore,
    DaskOfflineStoreConfig,
    DaskRetrievalJob,
)
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.utils import _get_requested_feature_views_to_features_dict

from onering_assets.features.pit import ViewRows, point_in_time_join, utc

TYPE = "onering_assets.features.offline.PointInTimeFileOfflineStore"


class PointInTimeFileOfflineStoreConfig(DaskOfflineStoreConfig):
    """The file store's config under this store's type name."""

    type: Literal["onering_assets.features.offline.PointInTimeFileOfflineStore"] = TYPE  # type: ignore[assignment]


def read_source(config: RepoConfig, source: FileSource, columns: list[str]) -> pd.DataFrame:
    """A file source's rows (local path relative to the repo, or s3:// via pyarrow)."""
    path = FileSource.get_uri_for_file_path(config.repo_path, source.file_options.uri)
    filesystem, path = FileSource.create_filesystem_and_path(
        path, source.file_options.s3_endpoint_override
    )
    return pq.read_table(path, filesystem=filesystem, columns=columns).to_pandas()


def _view_rows(
    config: RepoConfig, view: FeatureView, features: list[str], full_names: bool
) -> ViewRows:
    source = view.batch_source
    assert isinstance(source, FileSource)
    reverse = {v: k for k, v in (source.field_mapping or {}).items()}
    keys = [view.projection.join_key_map.get(c.name, c.name) for c in view.entity_columns]
    stored_keys = [reverse.get(c.name, c.name) for c in view.entity_columns]
    created = source.created_timestamp_column or None
    stored = [reverse.get(f, f) for f in features]
    columns = [*stored_keys, source.timestamp_field, *([created] if created else []), *stored]
    rows = read_source(config, source, list(dict.fromkeys(columns)))
    rows = rows.rename(columns=dict(zip(stored_keys, keys, strict=True)))
    rows = rows.rename(columns=dict(zip(stored, features, strict=True)))
    name = view.projection.name_to_use()
    return ViewRows(
        rows=rows,
        keys=keys,
        timestamp=source.timestamp_field,
        created=created,
        features=features,
        ttl=view.ttl if view.ttl and view.ttl.total_seconds() else None,
        output={f: f"{name}__{f}" if full_names else f for f in features},
    )


def _pull(
    config: RepoConfig,
    source: DataSource,
    keys: list[str],
    features: list[str],
    timestamp: str,
    created: str | None,
    window: tuple[datetime | None, datetime | None],
    latest: bool,
) -> RetrievalJob:
    """Rows stamped within ``window`` (both ends included, as the file store does)."""
    assert isinstance(source, FileSource)

    def evaluate() -> dd.DataFrame:
        stamps = [timestamp, *([created] if created else [])]
        rows = read_source(config, source, list(dict.fromkeys([*keys, *features, *stamps])))
        for column in stamps:
            rows[column] = utc(pd.Series(rows[column]))
        start, end = window
        if start is not None:
            rows = rows[rows[timestamp] >= start]
        if end is not None:
            rows = rows[rows[timestamp] <= end]
        rows = pd.DataFrame(rows).sort_values(by=stamps, kind="stable")
        if latest and keys:
            rows = rows.drop_duplicates(subset=keys, keep="last")
        if not keys:
            rows[DUMMY_ENTITY_ID] = DUMMY_ENTITY_VAL
        return dd.from_pandas(rows.reset_index(drop=True), npartitions=1)

    return DaskRetrievalJob(
        evaluation_function=evaluate, full_feature_names=False, repo_path=str(config.repo_path)
    )


class PointInTimeFileOfflineStore(DaskOfflineStore):
    """Feast's file offline store; historical retrieval by ``point_in_time_join``."""

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        return _pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            (start_date, end_date),
            latest=True,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        return _pull(
            config,
            data_source,
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            (start_date, end_date),
            latest=False,
        )

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | dd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        if not isinstance(entity_df, pd.DataFrame):
            # Not an entity frame (a SQL string, dask, or none): the file store's own way.
            return DaskOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
                **kwargs,
            )
        ts = DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
        if ts not in entity_df:
            raise ValueError(
                f"The entity frame needs a column {ts!r} (UTC) giving each row's time; "
                f"it has {', '.join(map(str, entity_df.columns))}."
            )
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        wanted, _ = _get_requested_feature_views_to_features_dict(
            feature_refs, feature_views, odfvs
        )
        frame = entity_df

        def evaluate() -> dd.DataFrame:
            views = [
                _view_rows(config, view, features, full_feature_names)
                for view, features in wanted.items()
            ]
            return dd.from_pandas(point_in_time_join(frame, ts, views), npartitions=1)

        stamps = utc(pd.Series(entity_df[ts]))
        return DaskRetrievalJob(
            evaluation_function=evaluate,
            full_feature_names=full_feature_names,
            repo_path=str(config.repo_path),
            on_demand_feature_views=odfvs,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=[c for c in entity_df.columns if c != ts],
                min_event_timestamp=stamps.min().to_pydatetime(),
                max_event_timestamp=stamps.max().to_pydatetime(),
            ),
        )
