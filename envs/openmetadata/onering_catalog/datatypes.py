"""Native column types (ClickHouse for Bronze/Silver, Postgres for Gold) → OpenMetadata columns.

OpenMetadata's own ``ColumnTypeParser`` keeps one table for every dialect, so ``Int8`` (a
ClickHouse byte) and ``int8`` (a Postgres bigint) collide there. OneRing knows which store
each column lives in, so it maps per dialect. The native type is kept verbatim in
``dataTypeDisplay``; ``Nullable(...)`` sets the column constraint for ClickHouse (Postgres
nullability is not in the document, so no constraint is claimed there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

CLICKHOUSE = "clickhouse"
POSTGRES = "postgres"

_CLICKHOUSE: dict[str, str] = {
    "String": "STRING",
    "FixedString": "CHAR",
    "UUID": "UUID",
    "Bool": "BOOLEAN",
    "Boolean": "BOOLEAN",
    "Int8": "TINYINT",
    "Int16": "SMALLINT",
    "Int32": "INT",
    "Int64": "BIGINT",
    "Int128": "LARGEINT",
    "Int256": "LARGEINT",
    # Unsigned integers: OpenMetadata has one UINT type; the width stays in dataTypeDisplay.
    "UInt8": "UINT",
    "UInt16": "UINT",
    "UInt32": "UINT",
    "UInt64": "UINT",
    "UInt128": "UINT",
    "UInt256": "UINT",
    "Float32": "FLOAT",
    "Float64": "DOUBLE",
    "BFloat16": "FLOAT",
    "Decimal": "DECIMAL",
    "Decimal32": "DECIMAL",
    "Decimal64": "DECIMAL",
    "Decimal128": "DECIMAL",
    "Decimal256": "DECIMAL",
    "Date": "DATE",
    "Date32": "DATE",
    "DateTime": "DATETIME",
    "DateTime64": "DATETIME",
    "Time": "TIME",
    "Time64": "TIME",
    "Enum": "ENUM",
    "Enum8": "ENUM",
    "Enum16": "ENUM",
    "Array": "ARRAY",
    "Map": "MAP",
    "Tuple": "TUPLE",
    "Nested": "STRUCT",
    "JSON": "JSON",
    "Object": "JSON",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Point": "POINT",
    "Polygon": "POLYGON",
    "AggregateFunction": "AGGREGATEFUNCTION",
    "SimpleAggregateFunction": "AGGREGATEFUNCTION",
    "Nothing": "NULL",
}

_POSTGRES: dict[str, str] = {
    "smallint": "SMALLINT",
    "int2": "SMALLINT",
    "smallserial": "SMALLINT",
    "integer": "INT",
    "int": "INT",
    "int4": "INT",
    "serial": "INT",
    "bigint": "BIGINT",
    "int8": "BIGINT",
    "bigserial": "BIGINT",
    "real": "FLOAT",
    "float4": "FLOAT",
    "double precision": "DOUBLE",
    "float8": "DOUBLE",
    "float": "DOUBLE",
    "numeric": "NUMERIC",
    "decimal": "DECIMAL",
    "money": "MONEY",
    "text": "TEXT",
    "character varying": "VARCHAR",
    "varchar": "VARCHAR",
    "character": "CHAR",
    "char": "CHAR",
    "bpchar": "CHAR",
    "name": "VARCHAR",
    "citext": "TEXT",
    "uuid": "UUID",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "date": "DATE",
    "time": "TIME",
    "time without time zone": "TIME",
    "time with time zone": "TIME",
    "timetz": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMPZ",
    "timestamptz": "TIMESTAMPZ",
    "interval": "INTERVAL",
    "json": "JSON",
    "jsonb": "JSON",
    "bytea": "BYTEA",
    "xml": "XML",
    "inet": "INET",
    "cidr": "CIDR",
    "macaddr": "MACADDR",
    "tsvector": "TSVECTOR",
    "tsquery": "TSQUERY",
    "point": "POINT",
    "polygon": "POLYGON",
    "bit": "BIT",
    "bit varying": "BIT",
    "pg_lsn": "PG_LSN",
}

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_LENGTHED = {"CHAR", "VARCHAR", "BINARY", "VARBINARY"}


@dataclass(frozen=True)
class ColumnType:
    """A native type as OpenMetadata's ``Column`` fields."""

    data_type: str
    display: str
    nullable: bool | None = None
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    array_of: str | None = None

    def column_fields(self) -> dict[str, Any]:
        """The ``Column`` keyword arguments (dataType, dataTypeDisplay, constraint, …)."""
        out: dict[str, Any] = {"dataType": self.data_type, "dataTypeDisplay": self.display}
        if self.length is not None:
            out["dataLength"] = self.length
        if self.precision is not None:
            out["precision"] = self.precision
        if self.scale is not None:
            out["scale"] = self.scale
        if self.array_of is not None:
            out["arrayDataType"] = self.array_of
        if self.nullable is not None:
            out["constraint"] = "NULL" if self.nullable else "NOT_NULL"
        return out


def _split_args(args: str) -> list[str]:
    """Top-level comma-separated arguments (``Decimal(10, 2)``, ``Map(String, Array(Int8))``)."""
    parts, depth, current = [], 0, []
    for char in args:
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        depth += char == "("
        depth -= char == ")"
        current.append(char)
    if current:
        parts.append("".join(current).strip())
    return [p for p in parts if p]


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def _clickhouse(native: str, display: str) -> ColumnType:
    match = _CALL.match(native)
    if not match:
        return ColumnType("UNKNOWN", display, nullable=False)
    name, args = match.group(1), _split_args(match.group(2) or "")
    if name == "Nullable" and args:
        inner = _clickhouse(args[0], display)
        return replace(inner, nullable=True)
    if name == "LowCardinality" and args:  # a storage encoding: the values are the inner type
        return _clickhouse(args[0], display)
    data_type = _CLICKHOUSE.get(name, "UNKNOWN")
    if name == "FixedString":
        return ColumnType(
            data_type, display, nullable=False, length=_int(args[0] if args else None)
        )
    if data_type == "DECIMAL":
        precision, scale = _decimal_args(name, args)
        return ColumnType(data_type, display, nullable=False, precision=precision, scale=scale)
    if data_type == "ARRAY" and args:
        inner = _clickhouse(args[0], args[0])
        return ColumnType(data_type, display, nullable=False, array_of=inner.data_type)
    return ColumnType(data_type, display, nullable=False)


def _decimal_args(name: str, args: list[str]) -> tuple[int | None, int | None]:
    """``Decimal(P, S)``, or ``Decimal32(S)``/``64``/``128``/``256`` with their fixed precision."""
    widths = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
    if name in widths:
        return widths[name], _int(args[0]) if args else None
    precision = _int(args[0]) if args else None
    scale = _int(args[1]) if len(args) > 1 else (0 if precision is not None else None)
    return precision, scale


def _postgres(native: str, display: str) -> ColumnType:
    text = native.strip().lower()
    if text.endswith("[]"):
        inner = _postgres(text[:-2], text[:-2])
        return ColumnType("ARRAY", display, array_of=inner.data_type)
    match = _CALL.match(text)
    base, args = (match.group(1), _split_args(match.group(2) or "")) if match else (text, [])
    # ``timestamp(3) with time zone``: the modifier sits in the middle of the name.
    base = re.sub(r"\s*\(\d+\)\s*", " ", text).strip() if "(" in text and "zone" in text else base
    data_type = _POSTGRES.get(base, "UNKNOWN")
    if data_type in {"NUMERIC", "DECIMAL"}:
        precision = _int(args[0]) if args else None
        scale = _int(args[1]) if len(args) > 1 else (0 if precision is not None else None)
        return ColumnType(data_type, display, precision=precision, scale=scale)
    if data_type in _LENGTHED:
        return ColumnType(data_type, display, length=_int(args[0]) if args else None)
    return ColumnType(data_type, display)


def column_type(native: str, dialect: str) -> ColumnType:
    """Map one native type of ``dialect`` (``"clickhouse"`` or ``"postgres"``).

    Unknown types map to ``UNKNOWN`` with the native text in ``dataTypeDisplay``, never an
    error: a catalog entry with an unknown type is better than no entry. CHAR/VARCHAR
    without a declared length get OpenMetadata's required ``dataLength`` from
    ``to_column`` (1 for CHAR, as SQL defines it; 0 meaning unbounded for VARCHAR).
    """
    if dialect == CLICKHOUSE:
        return _clickhouse(native, native)
    if dialect == POSTGRES:
        return _postgres(native, native)
    raise ValueError(f"unknown column type dialect {dialect!r}")


def to_column(name: str, native: str, description: str, dialect: str) -> dict[str, Any]:
    """The ``Column`` fields of one document column (a dict the generated model accepts)."""
    mapped = column_type(native, dialect)
    fields = mapped.column_fields()
    if mapped.data_type in _LENGTHED and "dataLength" not in fields:
        fields["dataLength"] = 1 if mapped.data_type == "CHAR" else 0
    return {"name": name, **fields, "description": description or None}
