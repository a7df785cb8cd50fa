"""ConfigurableResources for every store, switched by configuration, never by profile checks."""

from onering_assets.resources.clickhouse import ClickHouseResource
from onering_assets.resources.lake import LakeResource
from onering_assets.resources.postgres import PostgresResource
from onering_assets.resources.source import SourceResource

__all__ = ["ClickHouseResource", "LakeResource", "PostgresResource", "SourceResource"]
