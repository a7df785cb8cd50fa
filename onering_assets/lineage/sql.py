"""Parse declared SQL (ClickHouse dialect) for dependencies, output columns and column lineage."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import Expr, ParseError, exp
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from onering_assets.errors import ConfigError

DIALECT = "clickhouse"
LAYER_SCHEMAS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class ParsedSql:
    """What a declared SELECT reads and writes."""

    tree: Expr
    upstream: tuple[tuple[str, str], ...]
    output_columns: tuple[str, ...]
    column_lineage: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)


def parse_select(sql: str, *, where: str) -> Expr:
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except ParseError as err:
        raise ConfigError(f"{where}: the SQL does not parse as ClickHouse: {err}") from err
    if not isinstance(tree, exp.Query):
        raise ConfigError(f"{where}: a declared table must be one SELECT statement.")
    return tree


def upstream_tables(tree: Expr) -> tuple[tuple[str, str], ...]:
    """``(schema, table)`` of every layer table the query reads (CTE names excluded)."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found = {
        (table.db, table.name)
        for table in tree.find_all(exp.Table)
        if table.db in LAYER_SCHEMAS and table.name not in ctes
    }
    return tuple(sorted(found))


def _leaf_sources(node) -> list[tuple[str, str, str]]:
    leaves = []
    for child in node.walk():
        if isinstance(child.expression, exp.Table) and not child.downstream:
            table = child.expression
            column = child.name.rsplit(".", 1)[-1]
            leaves.append((table.db, table.name, column))
    return sorted(set(leaves))


def prefer_source_columns(tree: Expr, schema: dict[str, dict[str, dict[str, str]]]) -> Expr:
    """Qualify each bare name that is both a source column and an output alias as the column.

    ClickHouse runs declared SQL with ``prefer_column_name_to_alias = 1``: in
    ``arr_delay_min AS arr_delay, … arr_delay IS NOT NULL …`` the second ``arr_delay`` is
    the source's column. sqlglot would expand it to the alias; naming its table first keeps
    it the column (for lineage: what the engine really reads). ``tree`` is changed in place.
    """
    ctes = {cte.alias_or_name: cte.this for cte in tree.find_all(exp.CTE)}
    for select in tree.find_all(exp.Select):
        aliases = {s.alias for s in select.selects if isinstance(s, exp.Alias)}
        columns: dict[str, set[str]] = {}
        for source in select.find_all(exp.Table):
            if source.parent_select is not select:
                continue
            if source.db in LAYER_SCHEMAS:
                names = set(schema.get(source.db, {}).get(source.name, {}))
            elif source.name in ctes and isinstance(ctes[source.name], exp.Select):
                names = set(ctes[source.name].named_selects)  # type: ignore[attr-defined]
            else:
                continue
            columns[source.alias_or_name] = names
        for node in (*select.selects, select.args.get("where"), select.args.get("group")):
            for column in node.find_all(exp.Column) if node is not None else ():
                if column.table or column.name not in aliases or column.parent_select is not select:
                    continue
                owners = [alias for alias, names in columns.items() if column.name in names]
                if len(owners) == 1:
                    column.set("table", exp.to_identifier(owners[0]))
    return tree


def column_lineage(
    tree: Expr, schema: dict[str, dict[str, dict[str, str]]], columns: tuple[str, ...]
) -> dict[str, list[tuple[str, str, str]]]:
    """For each output column, the ``(schema, table, column)`` sources it is computed from."""
    mapping = MappingSchema(dict(schema), dialect=DIALECT)
    qualified = qualify(
        prefer_source_columns(tree.copy(), schema),
        schema=mapping,
        dialect=DIALECT,
        validate_qualify_columns=False,
    )
    result: dict[str, list[tuple[str, str, str]]] = {}
    for column in columns:
        node = lineage(column, qualified, schema=mapping, dialect=DIALECT, trim_selects=False)
        result[column] = _leaf_sources(node)
    return result


def parse_declared_sql(
    sql: str, *, where: str, schema: dict[str, dict[str, dict[str, str]]] | None = None
) -> ParsedSql:
    """Parse one declared table's SQL; column lineage needs the upstream schemas."""
    tree = parse_select(sql, where=where)
    outputs = tuple(tree.named_selects)  # type: ignore[attr-defined]
    lineage_map = column_lineage(tree, schema, outputs) if schema else {}
    return ParsedSql(tree, upstream_tables(tree), outputs, lineage_map)


def replace_tables(sql: str, schema: str, replacements: dict[str, str]) -> str:
    """Swap ``schema.table`` references for other SQL text, leaving the rest byte-identical.

    Works on tokens, not on a regenerated tree, so the declared SQL runs exactly as written
    (sqlglot would rewrite e.g. ``toStartOfMonth`` as ``dateTrunc``).
    """
    from sqlglot.dialects.clickhouse import ClickHouse

    tokens = ClickHouse().tokenize(sql)
    spans: list[tuple[int, int, str]] = []
    for first, dot, name in zip(tokens, tokens[1:], tokens[2:], strict=False):
        if (
            first.text == schema
            and dot.token_type == sqlglot.TokenType.DOT
            and name.text in replacements
        ):
            spans.append((first.start, name.end + 1, replacements[name.text]))
    for start, end, text in reversed(spans):
        sql = sql[:start] + text + sql[end:]
    return sql
