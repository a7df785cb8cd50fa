"""What `onering assets` shows: the graph, its metadata, and the latest results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from rich.console import Console
from rich.table import Table

from onering_assets.errors import ConfigError
from onering_assets.settings import LAYER_ORDER


def _sort_key(key: dg.AssetKey) -> tuple[int, str]:
    return LAYER_ORDER.get(key.path[0], 9), key.to_user_string()


def _when(instance: dg.DagsterInstance, key: dg.AssetKey) -> str:
    event = instance.get_latest_materialization_event(key)
    if event is None:
        return "never"
    return datetime.fromtimestamp(event.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def asset_rows(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]
) -> list[tuple[str, ...]]:
    graph = defs.resolve_asset_graph()
    rows = []
    for key in sorted(keys, key=_sort_key):
        node = graph.get(key)
        checks = [ck for ck in graph.asset_check_keys if ck.asset_key == key]
        parts = node.partitions_def
        partitions = f"monthly ({len(parts.get_partition_keys())})" if parts else "-"
        description = (node.description or "").split(". ")[0][:70]
        rows.append(
            (
                key.to_user_string(),
                node.group_name or "",
                partitions,
                str(len(checks)),
                _when(instance, key),
                description,
            )
        )
    return rows


def _parse_key(defs: dg.Definitions, text: str) -> dg.AssetKey:
    key = dg.AssetKey(text.strip().strip('"').split("/"))
    if key not in defs.resolve_asset_graph().materializable_asset_keys:
        raise ConfigError(f"No asset {text!r}; see `onering assets list` for the keys.")
    return key


def _columns_table(schema: dg.TableSchema, lineage: dg.TableColumnLineage | None) -> Table:
    table = Table(
        "column", "type", "description", "computed from", title="columns", title_justify="left"
    )
    deps = lineage.deps_by_column if lineage else {}
    for column in schema.columns:
        sources = ", ".join(
            f"{d.asset_key.to_user_string()}.{d.column_name}" for d in deps.get(column.name, [])
        )
        table.add_row(column.name, column.type, column.description or "", sources)
    return table


def _checks_table(defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetKey) -> Table:
    assets_def = defs.resolve_assets_def(key)
    specs = [s for s in assets_def.check_specs if s.asset_key == key]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [s.key for s in specs]
    )
    table = Table(
        "check", "blocking", "latest", "description", title="checks", title_justify="left"
    )
    for spec in specs:
        record = latest.get(spec.key)
        table.add_row(
            spec.name,
            "yes" if spec.blocking else "no",
            record.status.value.lower() if record else "never run",
            spec.description or "",
        )
    return table


def show_asset(
    console: Console, defs: dg.Definitions, instance: dg.DagsterInstance, text: str
) -> None:
    key = _parse_key(defs, text)
    graph = defs.resolve_asset_graph()
    node = graph.get(key)
    metadata: Mapping[str, Any] = node.metadata
    console.print(
        f"[bold]{key.to_user_string()}[/bold]  group={node.group_name}  "
        f"table={metadata.get('dagster/table_name')}"
    )
    console.print(node.description or "", highlight=False)
    console.print(
        f"owners: {', '.join(node.owners) or '-'}   tags: "
        f"{', '.join(f'{k}={v}' for k, v in node.tags.items() if not k.startswith('dagster/'))}"
    )
    parts = node.partitions_def
    console.print(f"partitions: {', '.join(parts.get_partition_keys()) if parts else 'none'}")
    console.print(
        "upstream: " + (", ".join(sorted(p.to_user_string() for p in node.parent_keys)) or "-")
    )
    console.print(
        "downstream: " + (", ".join(sorted(c.to_user_string() for c in node.child_keys)) or "-")
    )
    console.print(f"last materialized: {_when(instance, key)}")
    schema = metadata.get("dagster/column_schema")
    if isinstance(schema, dg.TableSchemaMetadataValue):
        schema = schema.schema
    lineage = metadata.get("dagster/column_lineage")
    if isinstance(lineage, dg.TableColumnLineageMetadataValue):
        lineage = lineage.column_lineage
    if isinstance(schema, dg.TableSchema):
        console.print(
            _columns_table(schema, lineage if isinstance(lineage, dg.TableColumnLineage) else None)
        )
    console.print(_checks_table(defs, instance, key))
