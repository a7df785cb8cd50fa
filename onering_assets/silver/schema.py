"""Does ClickHouse hold the Silver tables the YAML declares? Checked before every build writes.

Silver's tables are created and changed only by the changesets of its Liquibase changelog
(``onering_assets.silver.ddl``). A YAML edit that no changeset carries (a new column, a new
type, another sort key, a new table) is refused here with the changeset to add, instead of
being applied by an implicit ``CREATE`` or failing half-way through a publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onering_assets.catalog import SqlTable
from onering_assets.errors import ChangelogError
from onering_assets.silver import plan
from onering_assets.silver.ddl import CHANGELOG_DIR

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_WHERE = f"{CHANGELOG_DIR.relative_to(CHANGELOG_DIR.parents[2])}/changelog/"


def _actual(client: Client, name: str) -> tuple[list[tuple[str, str]], str, str] | None:
    tables = client.query(
        "SELECT partition_key, sorting_key FROM system.tables"
        " WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": plan.DATABASE, "t": name},
    ).result_rows
    if not tables:
        return None
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String}"
        " AND table = {t:String} ORDER BY position",
        parameters={"db": plan.DATABASE, "t": name},
    ).result_rows
    return [(str(n), str(t)) for n, t in columns], str(tables[0][0]), str(tables[0][1])


def _key(text: str) -> str:
    """A key expression as ``system.tables`` shows it: ``(a)`` and ```a``` are ``a``."""
    text = text.replace("`", "").strip()
    if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
        text = text[1:-1].strip()
    return text


def _expected_keys(engine: str) -> tuple[str, str]:
    before, order = engine.split(" ORDER BY ", 1)
    partition = before.split("PARTITION BY ", 1)[1] if "PARTITION BY " in before else ""
    return _key(partition), _key(order)


def differences(
    name: str, declared: list[tuple[str, str]], engine: str, actual: tuple
) -> list[str]:
    """What differs between a declared table and ClickHouse's, one line each."""
    columns, partition_key, sorting_key = actual
    have = dict(columns)
    want = dict(declared)
    lines = [
        f"column `{n}` {t} is declared but missing (ALTER TABLE silver.{name} ADD COLUMN"
        f" `{n}` {t} {f'AFTER `{declared[i - 1][0]}`' if i else 'FIRST'})"
        for i, (n, t) in enumerate(declared)
        if n not in have
    ]
    lines += [
        f"column `{n}` is {have[n]} in ClickHouse but declared {t}"
        f" (ALTER TABLE silver.{name} MODIFY COLUMN `{n}` {t})"
        for n, t in declared
        if n in have and have[n] != t
    ]
    lines += [
        f"column `{n}` {t} is in ClickHouse but not declared (add it to the YAML, or"
        f" ALTER TABLE silver.{name} DROP COLUMN `{n}`)"
        for n, t in columns
        if n not in want
    ]
    if not lines and [n for n, _ in columns] != [n for n, _ in declared]:
        lines.append(
            f"columns are in another order: ClickHouse has {', '.join(n for n, _ in columns)};"
            f" the YAML declares {', '.join(n for n, _ in declared)}"
        )
    partition, order = _expected_keys(engine)
    if (_key(partition_key), _key(sorting_key)) != (partition, order):
        lines.append(
            f"keys differ: ClickHouse has PARTITION BY {partition_key or '(none)'} ORDER BY"
            f" ({sorting_key}); the YAML declares PARTITION BY {partition or '(none)'} ORDER BY"
            f" ({order}) (a new sort key means a new table and a copy)"
        )
    return lines


def verify(client: Client, table: SqlTable) -> None:
    """Refuse to build ``table`` unless ClickHouse holds exactly what its YAML declares."""
    problems: list[str] = []
    for name, declared, engine in plan.declared_tables(table):
        actual = _actual(client, name)
        if actual is None:
            columns = ",\n    ".join(f"`{n}` {t}" for n, t in declared)
            problems.append(
                f"silver.{name} does not exist: no changeset creates it. Add one, e.g.\n"
                f"--changeset <you>:<id>\nCREATE TABLE IF NOT EXISTS silver.{name} (\n"
                f"    {columns}\n) {engine};"
            )
            continue
        found = differences(name, declared, engine, actual)
        problems += [f"silver.{name}: {line}" for line in found]
    if problems:
        raise ChangelogError(
            f"silver.{table.name} in ClickHouse is not what its YAML declares; a schema change"
            f" to a Silver table is a changeset under {_WHERE} (reviewed, applied and recorded"
            " in default.databasechangelog before the build):\n  - " + "\n  - ".join(problems)
        )
