"""Definition-time metadata shared by every layer, in OpenMetadata's Dagster conventions."""

from __future__ import annotations

from typing import Any

import dagster as dg

from onering_assets.catalog import BronzeTable, Column, SqlTable

STORES = {"bronze": "lake", "silver": "clickhouse", "gold": "postgres"}
KINDS = {"bronze": {"parquet"}, "silver": {"clickhouse"}, "gold": {"postgres"}}
DATABASES = {"bronze": "lake", "silver": "clickhouse", "gold": "onering"}


def _sources(table: SqlTable) -> dict[str, list[tuple[str, str, str]]]:
    """Per output column, the ``(layer, table, column)`` it is computed from (quotes off)."""
    return {
        column: [(layer, name, source.strip('"')) for layer, name, source in sources]
        for column, sources in table.parsed.column_lineage.items()
        if sources
    }


COMPUTED_FROM = "← "


def computed_from(sources: list[tuple[str, str, str]]) -> str:
    """``← silver.flights.dep_delay, …``: what a column's description ends with."""
    return COMPUTED_FROM + ", ".join(".".join(source) for source in sources)


def column_schema(
    columns: tuple[Column, ...], lineage: dict[str, list[tuple[str, str, str]]] | None = None
) -> dg.TableSchema:
    """The columns; a computed column's description ends with what it is computed from.

    The open-source Dagster UI does not render ``dagster/column_lineage`` (only Dagster+
    does); every column's description is shown on the asset's page.
    """
    lineage = lineage or {}

    def description(column: Column) -> str | None:
        parts = [column.description.strip()] if column.description else []
        if lineage.get(column.name):
            parts.append(computed_from(lineage[column.name]))
        return " ".join(parts) or None

    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.type, description=description(c)) for c in columns]
    )


def column_lineage(table: SqlTable) -> dg.TableColumnLineage:
    deps = {
        column: [
            dg.TableColumnDep(asset_key=dg.AssetKey([layer, name]), column_name=source)
            for layer, name, source in sources
        ]
        for column, sources in _sources(table).items()
    }
    return dg.TableColumnLineage(deps_by_column=deps)


def spec_metadata(table: BronzeTable | SqlTable) -> dict[str, Any]:
    schema = "gold" if table.layer == "gold" else table.layer
    metadata: dict[str, Any] = {
        "dagster/column_schema": column_schema(
            table.columns, _sources(table) if isinstance(table, SqlTable) else None
        ),
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


def catalog_labels(table: BronzeTable | SqlTable) -> dict[str, str]:
    """The ``database``/``schema``/``table`` labels every materialization carries, as text.

    OpenMetadata's Dagster connector reads these from an asset's latest materialization
    (``assetMaterializations(limit: 1) { metadataEntries }``), not from its definition, when
    the asset key does not name the database and schema itself. Same values as the spec's.
    """
    return {
        "database": DATABASES[table.layer],
        "schema": table.layer,
        "table": table.name,
    }
