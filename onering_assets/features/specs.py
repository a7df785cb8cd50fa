"""Asset specs of the feature assets, declared from ``views.yml`` alone (no Feast import)."""

from __future__ import annotations

import dagster as dg

from onering_assets.features.views import EVENT_TIMESTAMP, View

GROUP = "features"


def source_key(view: View) -> dg.AssetKey:
    return dg.AssetKey([GROUP, f"{view.name}_source"])


def view_key(view: View) -> dg.AssetKey:
    return dg.AssetKey([GROUP, view.name])


def _schema(view: View, *, keys: bool) -> dg.TableSchema:
    columns = [
        dg.TableColumn(e.join_key, "String", description=e.description) for e in view.entities
    ]
    columns.append(
        dg.TableColumn(
            EVENT_TIMESTAMP, "DateTime('UTC')", description="When the values were known."
        )
    )
    columns += [
        dg.TableColumn(
            f.name,
            f.dtype,
            description=" ".join(
                part
                for part in (
                    f.description,
                    f"Range {f.range[0]:g}..{f.range[1]:g}." if f.range else "",
                    f"At most {f.max_null_pct:g}% null.",
                )
                if part
            ),
        )
        for f in view.features
    ]
    return dg.TableSchema(columns=columns if keys else columns[len(view.entities) + 1 :])


def source_spec(view: View) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=source_key(view),
        description=(
            f"Offline rows of the feature view {view.name}: {view.description} Computed from "
            f"Silver by {view.sql_path.name}, written as Parquet to the lake "
            f"(features/{view.name}/data.parquet)."
        ),
        group_name=GROUP,
        owners=list(view.owners),
        tags={"layer": GROUP, "store": "lake"},
        kinds={"parquet", "clickhouse"},
        deps=[dg.AssetDep(dg.AssetKey(list(table))) for table in view.inputs],
        metadata={
            "dagster/column_schema": _schema(view, keys=True),
            "sql": dg.MetadataValue.md(f"```sql\n{view.sql.strip()}\n```"),
            "key": ", ".join((*view.join_keys, EVENT_TIMESTAMP)),
            "lake_path": f"features/{view.name}/data.parquet",
            # The lineage document's labels: the lake's features/<view> folder.
            "database": "lake",
            "schema": GROUP,
            "table": view.name,
        },
    )


def view_spec(view: View) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=view_key(view),
        description=(
            f"Feast feature view {view.name}: {view.description} Applied to the registry and "
            "materialized to the online store (newest row per entity)."
        ),
        group_name=GROUP,
        owners=list(view.owners),
        tags={"layer": GROUP, "store": "feast"},
        kinds={"feast"},
        deps=[dg.AssetDep(source_key(view))],
        metadata={
            "dagster/column_schema": _schema(view, keys=False),
            "entities": ", ".join(view.join_keys),
            "feature_refs": dg.MetadataValue.json(list(view.refs)),
            "ttl_hours": view.ttl_hours,
            "freshness_hours": view.freshness_hours,
            # The lineage document's labels: Feast project ``onering``, the view.
            "database": "feast",
            "schema": "onering",
            "table": view.name,
        },
    )
