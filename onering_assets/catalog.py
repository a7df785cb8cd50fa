"""Declared tables: the files under ``platform/`` that the asset factories turn into assets.

Adding a table is adding a file: a Silver or Gold table is ``<name>.sql`` (ClickHouse
dialect) plus ``<name>.yml`` (keys, partitions, owners, checks); Gold's Postgres DDL is a
Liquibase changelog; Bronze sources are listed in ``platform/sources/*.yml``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from onering_assets.errors import ConfigError
from onering_assets.lineage.sql import ParsedSql, parse_declared_sql
from onering_assets.ranges import Ranges, parse_ranges, reject_out_of_range
from onering_assets.settings import PLATFORM_DIR

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# Columns every Bronze table carries and Silver passes through.
# ``_row`` is last so that a table from before it gains the column in place (ADD COLUMN).
INGESTION_COLUMNS = ("_batch_id", "_ingested_at", "_source", "_partition", "_row")
INGESTION_TYPES = {
    "_batch_id": "String",
    "_ingested_at": "DateTime64(3, 'UTC')",
    "_source": "String",
    "_partition": "String",
    "_row": "UInt64",
}
REJECT_COLUMNS = ("_raw", "_reject_reason")


def identifier(name: str, *, where: str) -> str:
    """Return ``name`` if it is a safe lower-case SQL identifier, else raise ConfigError."""
    if not IDENTIFIER.match(name):
        raise ConfigError(f"{where}: {name!r} is not a valid identifier (lower-case, a-z0-9_).")
    return name


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class BronzeTable:
    name: str
    description: str
    columns: tuple[Column, ...]
    owners: tuple[str, ...]
    source: str
    partitioned: bool = False
    ge_suite: str | None = None

    @property
    def layer(self) -> str:
        return "bronze"


@dataclass(frozen=True)
class SqlTable:
    """A Silver or Gold table declared as SQL + YAML.

    ``declared_sql`` is the file as written (lineage is parsed from it); ``sql`` is what a
    build runs: the declared SELECT with the declared ``ranges`` applied to its rejects.
    """

    layer: str
    name: str
    declared_sql: str
    parsed: ParsedSql
    description: str
    columns: tuple[Column, ...]
    owners: tuple[str, ...]
    key: tuple[str, ...]
    partitioned: bool
    path: Path
    partition_column: str | None = None
    order_by: tuple[str, ...] = ()
    max_reject_pct: float = 5.0
    freshness_hours: float | None = None
    ge_suite: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    ranges: Ranges = field(default_factory=dict)
    spec_text: str = ""  # the YAML as written, recorded with each publish (change/sources.py)

    @property
    def sql(self) -> str:
        return reject_out_of_range(self.declared_sql, self.ranges)

    @property
    def upstream(self) -> tuple[tuple[str, str], ...]:
        return self.parsed.upstream


@dataclass(frozen=True)
class Catalog:
    bronze: tuple[BronzeTable, ...]
    silver: tuple[SqlTable, ...]
    gold: tuple[SqlTable, ...]

    def sql_table(self, layer: str, name: str) -> SqlTable:
        """A declared Silver or Gold table."""
        for table in (*self.silver, *self.gold):
            if table.layer == layer and table.name == name:
                return table
        raise ConfigError(f"No declared table {layer}.{name}.")

    def table(self, layer: str, name: str) -> BronzeTable | SqlTable:
        for table in (*self.bronze, *self.silver, *self.gold):
            if table.layer == layer and table.name == name:
                return table
        raise ConfigError(f"No declared table {layer}.{name}.")


def _read_yaml(path: Path) -> dict[str, Any]:
    return _parse_yaml(path.read_text(), path)


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level.")
    return data


def load_bronze(platform_dir: Path) -> tuple[BronzeTable, ...]:
    tables = []
    for path in sorted((platform_dir / "sources").glob("*.yml")):
        spec = _read_yaml(path)
        owners = tuple(spec.get("owners", ()))
        for name, table in spec.get("tables", {}).items():
            where = f"{path}: {name}"
            columns = tuple(
                Column(identifier(c, where=where), "Nullable(String)", d or "")
                for c, d in table.get("columns", {}).items()
            )
            tables.append(
                BronzeTable(
                    name=identifier(name, where=where),
                    description=table.get("description", ""),
                    columns=columns,
                    owners=owners,
                    source=spec.get("source", path.stem),
                    partitioned=bool(table.get("partitioned", False)),
                    ge_suite=table.get("ge_suite"),
                )
            )
    return tuple(tables)


def schema_of(tables: tuple[BronzeTable | SqlTable, ...]) -> dict[str, dict[str, dict[str, str]]]:
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for table in tables:
        cols = {c.name: c.type for c in table.columns}
        cols.update({c: INGESTION_TYPES[c] for c in INGESTION_COLUMNS})
        schema.setdefault(table.layer, {})[table.name] = cols
    return schema


def _silver_columns(spec: dict[str, Any], where: str) -> tuple[Column, ...]:
    columns = []
    for item in spec.get("columns", []):
        if not isinstance(item, dict) or "name" not in item or "type" not in item:
            raise ConfigError(f"{where}: each column needs a name and a type.")
        name = identifier(item["name"], where=where)
        columns.append(Column(name, str(item["type"]), item.get("description", "")))
    if not columns:
        raise ConfigError(f"{where}: declare the table's columns (name, type, description).")
    return tuple(columns)


def _check_outputs(table: SqlTable, required: tuple[str, ...]) -> None:
    outputs = set(table.parsed.output_columns)
    missing = [c for c in (*[c.name for c in table.columns], *required) if c not in outputs]
    if missing:
        raise ConfigError(
            f"{table.path}: the SELECT does not produce declared column(s) {', '.join(missing)}."
        )


def _sql_table(
    layer: str, sql_path: Path, columns: tuple[Column, ...] | None, schema: dict[str, Any]
) -> SqlTable:
    spec = sql_path.with_suffix(".yml").read_text()
    return sql_table_from(layer, sql_path, sql_path.read_text(), spec, columns, schema)


def sql_table_from(
    layer: str,
    sql_path: Path,
    sql: str,
    spec_text: str,
    columns: tuple[Column, ...] | None,
    schema: dict[str, Any],
) -> SqlTable:
    """A declared table from its SQL and YAML as text (the files, or as once published).

    ``columns`` is None for Silver (declared in the YAML), else Gold's Liquibase columns.
    """
    where = str(sql_path)
    spec = _parse_yaml(spec_text, sql_path.with_suffix(".yml"))
    if columns is None:
        columns = _silver_columns(spec, where)
    else:
        described = spec.get("columns", {})
        columns = tuple(Column(c.name, c.type, described.get(c.name, "")) for c in columns)
    key = tuple(identifier(k, where=where) for k in spec.get("key", ()))
    if not key:
        raise ConfigError(f"{where}: declare the table's unique key (key: [...]).")
    partition_column = spec.get("partition_column")
    return SqlTable(
        layer=layer,
        name=identifier(sql_path.stem, where=where),
        declared_sql=sql,
        parsed=parse_declared_sql(sql, where=where, schema=schema),
        description=" ".join(str(spec.get("description", "")).split()),
        columns=columns,
        owners=tuple(spec.get("owners", ())),
        key=key,
        partitioned=bool(spec.get("partitioned", partition_column is not None)),
        path=sql_path,
        partition_column=partition_column,
        order_by=tuple(spec.get("order_by", key)),
        max_reject_pct=float(spec.get("max_reject_pct", 5.0)),
        freshness_hours=spec.get("freshness_hours"),
        ge_suite=spec.get("ge_suite", f"{layer}_{sql_path.stem}"),
        settings=dict(spec.get("settings", {})),
        checks=dict(spec.get("checks", {})),
        ranges=_ranges(layer, spec, columns, str(sql_path.with_suffix(".yml"))),
        spec_text=spec_text,
    )


def _ranges(layer: str, spec: dict[str, Any], columns: tuple[Column, ...], where: str) -> Ranges:
    if layer != "silver":
        if "ranges" in spec:
            raise ConfigError(
                f"{where}: ranges apply to Silver tables, where out-of-range rows are rejected;"
                " check a Gold mart's values with its Great Expectations suite."
            )
        return {}
    return parse_ranges(spec.get("ranges"), {c.name: c.type for c in columns}, where=where)


@functools.cache
def load_catalog(platform_dir: Path = PLATFORM_DIR) -> Catalog:
    """Read every declaration once per process."""
    from onering_assets.gold.ddl import gold_columns

    bronze = load_bronze(platform_dir)
    sql_dir = platform_dir / "analytics" / "clickhouse"
    silver = tuple(
        _sql_table("silver", p, None, schema_of(bronze))
        for p in sorted((sql_dir / "silver").glob("*.sql"))
    )
    for table in silver:
        _check_outputs(table, (*INGESTION_COLUMNS, *REJECT_COLUMNS))
        if len(table.upstream) != 1 or table.upstream[0][0] != "bronze":
            raise ConfigError(
                f"{table.path}: a Silver table reads exactly one Bronze table (found "
                f"{', '.join('.'.join(u) for u in table.upstream) or 'none'}), so that it can be "
                "reconciled row for row."
            )
    ddl = gold_columns(platform_dir / "versioning" / "liquibase")
    gold = []
    for path in sorted((sql_dir / "gold").glob("*.sql")):
        if path.stem not in ddl:
            raise ConfigError(
                f"{path}: no CREATE TABLE gold.{path.stem} in the Liquibase changelogs."
            )
        gold.append(_sql_table("gold", path, ddl[path.stem], schema_of(silver)))
        _check_outputs(gold[-1], ())
    return Catalog(bronze, silver, tuple(gold))
