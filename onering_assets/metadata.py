"""Definition-time metadata shared by every layer, in OpenMetadata's Dagster conventions."""

from __future__ import annotations

from typing import Any

import dagster as dg

from onering_assets.catalog import BronzeTable, Column, SqlTable

STORES = {"bronze": "lake", "silver": "clickhouse", "gold": "postgres"}
KINDS = {"bronze": {"parquet"}, "silver": {"clickhouse"}, "gold": {"postgres"}}
DATABASES = {"bronze": "lake", "silver": "clickhouse", "gold": "onering"}


def column_schema(columns: tuple[Column, ...]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.type, description=c.description or None) for c in columns]
    )


def column_lineage(table: SqlTable) -> dg.TableColumnLineage:
    deps = {
        column: [
            dg.TableColumnDep(asset_key=dg.AssetKey([layer, name]), column_name=source.strip('"'))
            for layer, name, source in sources
        ]
        for column, sources in table.parsed.column_lineage.items()
        if sources
    }
    return dg.TableColumnLineage(deps_by_column=deps)


def spec_metadata(table: BronzeTable | SqlTable) -> dict[str, Any]:
    schema = "gold" if table.layer == "gold" else table.layer
    metadata: dict[str, Any] = {
        "dagster/column_schema": column_schema(table.columns),
        "dagster/table_name": f"{schema}.{table.name}",
        "database": DATABASES[table.layer],
        "schema": schema,
        "table": table.name,
    }
    if isinstance(table, SqlTable):
        metadata["dagster/column_lineage"] = column_lineage(table)
        metadata["sql"] = dg.MetadataValue.md(f"```sql\n{table.declared_sql.strip()}\n```")
        metadata["key"] = ", ".join(table.key)
        if table.ranges:
            metadata["ranges"] = dg.MetadataValue.json(
                {column: list(bounds) for column, bounds in table.ranges.items()}
            )
    return metadata


def spec_tags(layer: str) -> dict[str, str]:
    return {"layer": layer, "store": STORES[layer]}
