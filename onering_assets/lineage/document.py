"""The neutral lineage document: the asset graph as a catalog sees it (no OpenMetadata here).

One versioned, deterministic JSON document that both catalog publishers read — the
OpenMetadata publisher (in the ``openmetadata`` environment) and the OpenLineage emitter —
and that ``onering lineage show`` prints from. It names:

- ``services``: the lake (Bronze, feature rows, ML files) as an S3/MinIO storage service,
  Silver as ClickHouse, Gold as Postgres, the Dagster and Airflow pipeline services, Feast
  (no catalog service type) and MLflow;
- ``entities``: one per asset (a container in the lake, a table for Silver and Gold, a Feast
  feature view, the MLflow model with its features and their sources) with columns, types,
  descriptions, owners, tags and checks;
- ``pipelines``: the Dagster code location (one task per asset) and each exported Airflow
  DAG (its tasks and the assets each materializes);
- ``edges``: asset to asset with column lineage (from the SQL; by name through Feast views
  and into the model), the SQL, and every pipeline task that produces the edge; an asset
  that writes into another's table (the Pulsar stream into Bronze flights) has an edge to
  it marked ``writes``;
- ``runs``: statuses with times, per-task results and check results (see ``runs.py``).

No secrets and no machine paths: nothing here reads settings, DSNs or the state folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from onering_assets.catalog import INGESTION_COLUMNS, INGESTION_TYPES
from onering_assets.lineage.mlmodel import model_details
from onering_assets.metadata import COMPUTED_FROM

DOCUMENT_VERSION = 1
CODE_LOCATION = "onering"

SERVICES: dict[str, dict[str, str]] = {
    "onering_lake": {"kind": "storage", "type": "S3", "layer": "bronze"},
    "onering_clickhouse": {"kind": "database", "type": "Clickhouse", "layer": "silver"},
    "onering_postgres": {"kind": "database", "type": "Postgres", "layer": "gold"},
    "onering_dagster": {"kind": "pipeline", "type": "Dagster"},
    "onering_airflow": {"kind": "pipeline", "type": "Airflow"},
    # Feast has no catalog service type: its views are named here and their features appear
    # in the model entity (``mlmodel.features``), sourced from the lake's offline rows.
    "onering_feast": {"kind": "featureStore", "type": "Feast"},
    "onering_mlflow": {"kind": "mlmodel", "type": "Mlflow"},
}
SERVICE_OF_LAYER = {v["layer"]: k for k, v in SERVICES.items() if "layer" in v}
# Features and ML assets are placed by where they are stored (their ``store`` tag).
SERVICE_OF_STORE = {"lake": "onering_lake", "feast": "onering_feast", "mlflow": "onering_mlflow"}
ENTITY_OF_SERVICE = {
    "onering_lake": "container",
    "onering_feast": "featureView",
    "onering_mlflow": "mlmodel",
}
DAGSTER_PIPELINE = f"onering_dagster.{CODE_LOCATION}"
# Metadata of an asset that lands its rows in another asset's table (``schema.table``).
WRITES = "onering/writes"


def task_name(key: str) -> str:
    """The pipeline task of asset ``layer/table``: ``layer__table`` (an Airflow task id too)."""
    return key.replace("/", "__")


def service_of(layer: str, store: str | None) -> str:
    """The catalog service an asset lives in: by layer, else by its ``store`` tag."""
    if layer in SERVICE_OF_LAYER:
        return SERVICE_OF_LAYER[layer]
    if store in SERVICE_OF_STORE:
        return SERVICE_OF_STORE[store]
    raise ValueError(f"layer {layer!r} with store {store!r} has no catalog service")


def entity_fqn(layer: str, database: str, schema: str, table: str, store: str | None = None) -> str:
    """Where the catalog names an asset.

    A container in the lake, a model in MLflow, a Feast view under
    ``onering_feast.<project>``, else a table of its database.
    """
    service = service_of(layer, store)
    kind = SERVICES[service]["kind"]
    if kind in ("storage", "featureStore"):
        return f"{service}.{schema}.{table}"
    if kind == "mlmodel":
        return f"{service}.{table}"
    return f"{service}.{database}.{schema}.{table}"


def _location(meta: Mapping[str, Any], key: dg.AssetKey) -> tuple[str, str, str]:
    """(database, schema, table) from the spec's labels; ML assets default to their key."""
    if all(n in meta for n in ("database", "schema", "table")):
        database, schema, table = (_text(meta[n]) for n in ("database", "schema", "table"))
        return database, schema, table
    name = _text(meta.get("registered_model", key.path[-1]))
    return key.path[0], key.path[0], name


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _own(description: str | None) -> str:
    """A column's own description, without the "← sources" the UI shows (see edges)."""
    return (description or "").split(COMPUTED_FROM)[0].strip()


def _columns(node: Any, layer: str) -> list[dict[str, str]]:
    schema = node.metadata.get("dagster/column_schema")
    columns = [
        {"name": c.name, "type": c.type, "description": _own(c.description)}
        for c in (getattr(schema, "value", schema).columns if schema is not None else [])
    ]
    if layer in ("bronze", "silver"):  # the ingestion columns every row carries
        columns += [
            {"name": c, "type": INGESTION_TYPES[c], "description": "Ingestion metadata."}
            for c in INGESTION_COLUMNS
        ]
    return columns


def _entity(graph: Any, key: dg.AssetKey) -> dict[str, Any]:
    node = graph.get(key)
    meta = node.metadata
    layer = node.tags.get("layer", key.path[0])
    store = node.tags.get("store")
    database, schema, table = _location(meta, key)
    service = service_of(layer, store)
    checks = sorted(
        (
            {
                "name": ck.name,
                "blocking": graph.get_check_spec(ck).blocking,
                "description": graph.get_check_spec(ck).description or "",
            }
            for ck in graph.asset_check_keys
            if ck.asset_key == key
        ),
        key=lambda c: c["name"],
    )
    partitions = node.partitions_def
    window = (
        list(partitions.get_partition_keys())
        if isinstance(partitions, dg.TimeWindowPartitionsDefinition)
        else None
    )
    return {
        "key": key.to_user_string(),
        "entity": ENTITY_OF_SERVICE.get(service, "table"),
        "layer": layer,
        "service": service,
        "database": database,
        "schema": schema,
        "name": table,
        "fqn": entity_fqn(layer, database, schema, table, store),
        "description": node.description or "",
        "owners": sorted(node.owners),
        "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/")},
        "kinds": sorted(node.kinds),
        "group": node.group_name or "default",
        "columns": _columns(node, layer),
        "partitions": [window[0], window[-1]] if window else None,
        "checks": checks,
    }


def _sql(meta: Mapping[str, Any]) -> str | None:
    sql = meta.get("sql")
    if sql is None:
        return None
    text = _text(sql).strip()
    return text.removeprefix("```sql").removesuffix("```").strip()


def _column_pairs(
    node: Any, parent: dg.AssetKey, columns: Mapping[str, set[str]]
) -> list[dict[str, Any]]:
    """``{"to": column, "from": [parent columns]}`` for the columns read from ``parent``.

    Only columns of the two entities: a Silver SELECT also computes ``_raw`` and
    ``_reject_reason``, which go to its rejects table.
    """
    lineage = node.metadata.get("dagster/column_lineage")
    if lineage is None:
        return []
    own, theirs = columns[node.key.to_user_string()], columns[parent.to_user_string()]
    pairs = []
    for column, deps in sorted(lineage.deps_by_column.items()):
        sources = sorted({d.column_name for d in deps if d.asset_key == parent} & theirs)
        if sources and column in own:
            pairs.append({"to": column, "from": sources})
    return pairs


def column_names(entity: Mapping[str, Any]) -> list[str]:
    """An entity's column names; a model's are its features (``mlmodel.features``)."""
    if entity["entity"] == "mlmodel":
        return [f["name"] for f in (entity.get("mlmodel") or {}).get("features", [])]
    return [c["name"] for c in entity["columns"]]


def _by_name(
    source: Mapping[str, Any], target: Mapping[str, Any], columns: Mapping[str, set[str]]
) -> list[dict[str, Any]]:
    """Same-named column pairs of an edge through a Feast view or into a model.

    A Feast view serves its source's columns under their names, historical retrieval joins
    them into the training set under those names, and the model reads the training set's
    columns by name: so each column of ``target`` comes from the column of the same name.
    Other edges get pairs only from their SQL (``dagster/column_lineage``).
    """
    kinds = (source["entity"], target["entity"])
    if "featureView" not in kinds and kinds[1] != "mlmodel":
        return []
    shared = columns[source["key"]] & columns[target["key"]]
    return [{"to": name, "from": [name]} for name in sorted(shared)]


def _edges(
    graph: Any, entities: list[dict[str, Any]], producers: Mapping[str, list[dict[str, str]]]
) -> list[dict[str, Any]]:
    columns = {e["key"]: set(column_names(e)) for e in entities}
    by_key = {e["key"]: e for e in entities}
    edges = []
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        node = graph.get(key)
        target = key.to_user_string()
        for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
            source = parent.to_user_string()
            pairs = _column_pairs(node, parent, columns) or _by_name(
                by_key[source], by_key[target], columns
            )
            edges.append(
                {
                    "from": source,
                    "to": target,
                    "columns": pairs,
                    "sql": _sql(node.metadata),
                    "pipelines": producers.get(target, []),
                }
            )
    return edges + _writes(graph, entities, producers)


def _writes(
    graph: Any, entities: list[dict[str, Any]], producers: Mapping[str, list[dict[str, str]]]
) -> list[dict[str, Any]]:
    """Edges of assets that land rows in another asset's table (``onering/writes``).

    The stream asset writes its batches into Bronze flights' months, which Silver reads
    beside the batch path's files: an edge to that table, produced by the writer's tasks,
    marked ``writes`` (the target's own task does not read it). No column pairs: the
    writer's entity is its ledger, not the rows.
    """
    tables = {f"{e['schema']}.{e['name']}": e["key"] for e in entities}
    edges = []
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        written = graph.get(key).metadata.get(WRITES)
        if written is None:
            continue
        target = tables.get(_text(written))
        if target is None:
            raise ValueError(f"{key.to_user_string()} writes {_text(written)}, no asset's table")
        source = key.to_user_string()
        edges.append(
            {
                "from": source,
                "to": target,
                "columns": [],
                "sql": None,
                "pipelines": producers.get(source, []),
                "writes": True,
            }
        )
    return edges


def _pipelines(
    graph: Any, keys: list[str], dags: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """The Dagster code location and the Airflow DAGs, and per asset the tasks producing it."""

    def children(key: str) -> list[str]:
        node = graph.get(dg.AssetKey(key.split("/")))
        return sorted(task_name(c.to_user_string()) for c in node.child_keys)

    dagster = {
        "fqn": DAGSTER_PIPELINE,
        "service": "onering_dagster",
        "name": CODE_LOCATION,
        "description": "OneRing's Dagster code location: one task per asset.",
        "tasks": [{"name": task_name(k), "assets": [k], "downstream": children(k)} for k in keys],
    }
    producers: dict[str, list[dict[str, str]]] = {
        k: [{"pipeline": DAGSTER_PIPELINE, "task": task_name(k)}] for k in keys
    }
    pipelines = [dagster]
    for dag in sorted(dags, key=lambda d: d["dag_id"]):
        fqn = f"onering_airflow.{dag['dag_id']}"
        tasks = []
        for task in dag["tasks"]:
            tasks.append(
                {
                    "name": task["task_id"],
                    "assets": sorted(task["asset_keys"]),
                    "downstream": sorted(task.get("downstream", [])),
                }
            )
            for key in task["asset_keys"] if not task.get("checks_only") else ():
                producers.setdefault(key, []).append({"pipeline": fqn, "task": task["task_id"]})
        pipelines.append(
            {
                "fqn": fqn,
                "service": "onering_airflow",
                "name": dag["dag_id"],
                "description": dag.get("description", ""),
                "schedule": dag.get("schedule"),
                "tasks": sorted(tasks, key=lambda t: t["name"]),
            }
        )
    for refs in producers.values():
        refs.sort(key=lambda r: (r["pipeline"], r["task"]))
    return pipelines, producers


def build_document(
    defs: dg.Definitions,
    *,
    dags: Iterable[Mapping[str, Any]] = (),
    runs: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The lineage document of ``defs``, the Airflow DAGs exported from it, and ``runs``.

    Args:
        defs: the code location's definitions (only their asset graph is read).
        dags: the exported DAGs, as ``airflow_dags()`` returns them.
        runs: run records, as ``runs.run_records()`` returns them.
    """
    graph = defs.resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.materializable_asset_keys)
    pipelines, producers = _pipelines(graph, keys, dags)
    entities = [_entity(graph, dg.AssetKey(k.split("/"))) for k in keys]
    fqns = {e["key"]: e["fqn"] for e in entities}
    for e in entities:
        if e["entity"] == "mlmodel":
            e["mlmodel"] = model_details(graph.get(dg.AssetKey(e["key"].split("/"))).metadata, fqns)
    return {
        "version": DOCUMENT_VERSION,
        "code_location": CODE_LOCATION,
        "services": [{"name": name, **spec} for name, spec in sorted(SERVICES.items())],
        "entities": entities,
        "pipelines": pipelines,
        "edges": _edges(graph, entities, producers),
        "runs": sorted(runs, key=lambda r: (r.get("start") or "", r["run_id"])),
    }


def dumps(document: Mapping[str, Any]) -> str:
    """Canonical JSON: the same graph and runs give the same bytes."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def fingerprint(part: Any) -> str:
    """A short stable hash of any part of the document (32 hex characters)."""
    text = json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
