"""Does ClickHouse hold the Silver tables the YAML declares? Checked before every build writes.

Silver's tables are created and changed only by the changesets of its Liquibase changelog
(``onering_assets.silver.ddl``). A YAML edit that no changeset carries (a new column, a new
type, another sort key, a new table) is refused here with the changeset to add, instead of
being applied by an implicit ``CREATE`` or failing half-way through a publish.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from onering_assets.catalog import SqlTable
from onering_assets.changelogs.formatted import Changeset, read_changelog
from onering_assets.checks.outcome import same_type
from onering_assets.errors import ChangelogError
from onering_assets.namespaces import silver_db
from onering_assets.silver import ddl, plan
from onering_assets.silver.ddl import CHANGELOG_DIR

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_WHERE = f"{CHANGELOG_DIR.relative_to(CHANGELOG_DIR.parents[2])}/changelog/"


def _actual(client: Client, name: str) -> tuple[list[tuple[str, str]], str, str] | None:
    """The table as ClickHouse holds it, in the namespace being built (an environment's)."""
    tables = client.query(
        "SELECT partition_key, sorting_key FROM system.tables"
        " WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": silver_db(), "t": name},
    ).result_rows
    if not tables:
        return None
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String}"
        " AND table = {t:String} ORDER BY position",
        parameters={"db": silver_db(), "t": name},
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


def _changed_keys(name: str, engine: str, partition: str, order: str) -> str:
    """The changesets that give a table other keys: ClickHouse cannot change them in place."""
    new = f"silver.{name}__rekeyed"
    return (
        f"keys differ: ClickHouse has PARTITION BY {partition or '(none)'} ORDER BY ({order});"
        f" the YAML declares {engine.removeprefix('ENGINE = MergeTree ')}. Keys cannot change in"
        f" place: in a changeset, CREATE TABLE {new} AS silver.{name} {engine}; INSERT INTO"
        f" {new} SELECT * FROM silver.{name}; EXCHANGE TABLES {new} AND silver.{name};"
        f" DROP TABLE {new}"
    )


def differences(
    name: str, declared: list[tuple[str, str]], engine: str, actual: tuple
) -> list[str]:
    """What differs between a declared table and ClickHouse's, one line each, with its fix.

    Types compare as the ``column_schema`` check compares them (spaces and case aside);
    column order does not matter (staging is created as the table, inserts name columns).
    """
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
        if n in have and not same_type(have[n], t)
    ]
    lines += [
        f"column `{n}` {t} is in ClickHouse but not declared (add it to the YAML, or"
        f" ALTER TABLE silver.{name} DROP COLUMN `{n}`)"
        for n, t in columns
        if n not in want
    ]
    partition, order = _key(partition_key), _key(sorting_key)
    if (partition, order) != _expected_keys(engine):
        lines.append(_changed_keys(name, engine, partition, order))
    return lines


def _creator(table: str, changesets: list[Changeset]) -> Changeset | None:
    pattern = re.compile(
        rf"create\s+table\s+(if\s+not\s+exists\s+)?`?silver`?\.`?{re.escape(table)}`?[\s(]",
        re.IGNORECASE,
    )
    return next((cs for cs in changesets if pattern.search(cs.sql)), None)


def _missing(
    client: Client, name: str, declared: list[tuple[str, str]], engine: str, changelog_dir: Path
) -> str:
    columns = ",\n    ".join(f"`{n}` {t}" for n, t in declared)
    create = (
        f"--changeset <you>:<id>\nCREATE DATABASE IF NOT EXISTS silver;\n"
        f"CREATE TABLE IF NOT EXISTS silver.{name} (\n    {columns}\n) {engine};"
    )
    applied = {(r.id, r.author) for r in ddl.recorded(client)}
    creator = _creator(name, read_changelog(changelog_dir))
    if creator is not None and (creator.id, creator.author) in applied:
        return (
            f"silver.{name} does not exist, though changeset {creator.label} ({creator.path.name})"
            " that creates it is recorded as applied: it was dropped outside the changelog."
            f" Re-create it in a new changeset:\n{create}"
        )
    return f"silver.{name} does not exist: no changeset creates it. Add one, e.g.\n{create}"


def verify(client: Client, table: SqlTable, changelog_dir: Path = CHANGELOG_DIR) -> None:
    """Refuse to build ``table`` unless ClickHouse holds exactly what its YAML declares."""
    problems: list[str] = []
    for name, declared, engine in plan.declared_tables(table):
        actual = _actual(client, name)
        if actual is None:
            problems.append(_missing(client, name, declared, engine, changelog_dir))
            continue
        found = differences(name, declared, engine, actual)
        problems += [f"silver.{name}: {line}" for line in found]
    if problems:
        raise ChangelogError(
            f"silver.{table.name} in ClickHouse is not what its YAML declares; a schema change"
            f" to a Silver table is a changeset under {_WHERE} (reviewed, applied and recorded"
            " in default.databasechangelog before the build):\n  - " + "\n  - ".join(problems)
        )
