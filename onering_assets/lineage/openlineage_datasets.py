"""OpenLineage datasets for the lineage document's entities: names, facets, column lineage.

Dataset identity follows OpenLineage's naming spec with OneRing's *logical* service names,
never a host, port or path of the machine that ran: Bronze is ``s3://onering-lake`` with
the path ``bronze/<table>`` (the lake's layout), Silver is ``clickhouse://onering_clickhouse``
with ``<database>.<table>`` (``silver.flights``), Gold is ``postgres://onering_postgres``
with ``<database>.<schema>.<table>`` (``onering.gold.carrier_monthly_performance``). The
``dataSource`` facet names the catalog service. OpenMetadata's OpenLineage endpoint finds a
table from the last two name parts (``<schema>.<table>``) under the service its
``namespaceToServiceMapping`` gives the namespace (map ``clickhouse://onering_clickhouse`` to
``onering_clickhouse`` and ``postgres://onering_postgres`` to ``onering_postgres``), else by
FQN suffix; Bronze containers are not tables there, so Bronze-to-Silver edges come from the
OpenMetadata publisher only.

Features and ML assets: lake containers are ``s3://onering-lake`` ``<folder>/<name>``
(``features/carrier_stats``, ``ml/training_set``); a Feast view is
``feast://onering_feast`` ``<project>.<view>``; the MLflow model is ``mlflow://onering_mlflow``
``<registered model>``, its schema facet listing its features (``categorical`` or
``numerical``). OpenMetadata's OpenLineage endpoint resolves none of them (tables only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.generated import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    datasource_dataset,
    documentation_dataset,
    output_statistics_output_dataset,
    ownership_dataset,
    schema_dataset,
    tags_dataset,
)
from openlineage.client.generated.base import DatasetFacet

NAMESPACES = {
    "onering_lake": "s3://onering-lake",
    "onering_clickhouse": "clickhouse://onering_clickhouse",
    "onering_postgres": "postgres://onering_postgres",
    "onering_feast": "feast://onering_feast",
    "onering_mlflow": "mlflow://onering_mlflow",
}
# A check summary that names exactly one column: "(`carrier`) is unique", "column=carrier".
_COLUMN_IN_SUMMARY = re.compile(r"`(\w+)`|column=(\w+)")


def dataset_name(entity: Mapping[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of an entity of the document."""
    namespace = NAMESPACES[entity["service"]]
    if entity["entity"] == "container":
        return namespace, f"{entity['schema']}/{entity['name']}"
    if entity["entity"] == "mlmodel":
        return namespace, entity["name"]
    if entity["entity"] == "featureView" or namespace.startswith("clickhouse://"):
        # ClickHouse has databases, not schemas; Feast has projects
        return namespace, f"{entity['schema']}.{entity['name']}"
    return namespace, f"{entity['database']}.{entity['schema']}.{entity['name']}"


def _fields(entity: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(name, type, description)`` of the schema facet: a model's are its features."""
    if entity["entity"] == "mlmodel":
        features = (entity.get("mlmodel") or {}).get("features", [])
        return [
            (f["name"], f["type"], f"Feast view {f['view']}." if f.get("view") else "")
            for f in features
        ]
    return [(c["name"], c["type"], c["description"]) for c in entity["columns"]]


def _schema(entity: Mapping[str, Any]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=name, type=kind, description=text or None, ordinal_position=position
            )
            for position, (name, kind, text) in enumerate(_fields(entity), start=1)
        ]
    )


def _datasource(entity: Mapping[str, Any]) -> datasource_dataset.DatasourceDatasetFacet:
    return datasource_dataset.DatasourceDatasetFacet(
        name=entity["service"], uri=NAMESPACES[entity["service"]]
    )


def dataset_facets(entity: Mapping[str, Any], *, full: bool) -> dict[str, DatasetFacet]:
    """Schema and datasource always; documentation, ownership and tags when ``full``."""
    facets: dict[str, DatasetFacet] = {"schema": _schema(entity), "dataSource": _datasource(entity)}
    if not full:
        return facets
    if entity["description"]:
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
            description=entity["description"]
        )
    if entity["owners"]:
        facets["ownership"] = ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=o, type="MAINTAINER") for o in entity["owners"]]
        )
    if entity["tags"]:
        facets["tags"] = tags_dataset.TagsDatasetFacet(
            tags=[
                tags_dataset.TagsDatasetFacetFields(key=k, value=str(v), source="DAGSTER")
                for k, v in sorted(entity["tags"].items())
            ]
        )
    return facets


def column_lineage(
    edges: Sequence[Mapping[str, Any]], entities: Mapping[str, Mapping[str, Any]]
) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    """Each output column and the input columns it is computed from, across ``edges``."""
    fields: dict[str, list[column_lineage_dataset.InputField]] = {}
    for edge in edges:
        namespace, name = dataset_name(entities[edge["from"]])
        for pair in edge["columns"]:
            fields.setdefault(pair["to"], []).extend(
                column_lineage_dataset.InputField(namespace=namespace, name=name, field=column)
                for column in pair["from"]
            )
    if not fields:
        return None
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            column: column_lineage_dataset.Fields(inputFields=inputs)
            for column, inputs in sorted(fields.items())
        }
    )


def input_dataset(entity: Mapping[str, Any], **input_facets: Any) -> InputDataset:
    """An upstream entity as an input (``input_facets`` e.g. ``dataQualityAssertions``)."""
    namespace, name = dataset_name(entity)
    return InputDataset(
        namespace=namespace,
        name=name,
        facets=dataset_facets(entity, full=False),
        inputFacets=input_facets,
    )


def output_dataset(
    entity: Mapping[str, Any],
    lineage: column_lineage_dataset.ColumnLineageDatasetFacet | None,
    rows: int | None,
) -> OutputDataset:
    """The materialized entity: every dataset facet, column lineage and its row count."""
    namespace, name = dataset_name(entity)
    facets = dataset_facets(entity, full=True)
    if lineage is not None:
        facets["columnLineage"] = lineage
    output_facets: dict[str, Any] = {}
    if rows is not None:
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)
        )
    return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets)


def _column(check: Mapping[str, Any], columns: set[str]) -> str | None:
    named = {a or b for a, b in _COLUMN_IN_SUMMARY.findall(check.get("summary") or "")}
    return named.pop() if len(named) == 1 and named <= columns else None


def assertions(
    entity: Mapping[str, Any], checks: Sequence[Mapping[str, Any]]
) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """One assertion per check evaluation (a check evaluated per partition, per partition)."""
    columns = {c["name"] for c in entity["columns"]}
    declared = {c["name"]: c for c in entity["checks"]}
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion=check["name"],
                success=bool(check["passed"]),
                column=_column(check, columns),
                severity=str(check["severity"]).lower(),
                name=check["name"],
                description=declared.get(check["name"], {}).get("description") or None,
                actual=check["summary"] or None,
                params={"partition": check["partition"]} if check.get("partition") else {},
            )
            for check in checks
        ]
    )
