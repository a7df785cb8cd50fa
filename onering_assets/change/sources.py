"""What a table is declared as, as text: recorded with each publish, compared by `plan`.

A ``Source`` is the files as written (the SELECT, the YAML, and for Gold its Liquibase
columns; for Bronze its listed columns), so its digest is cheap to take for every table of
a project on every plan (no SQL is parsed), and the declaration it was published from can be
rebuilt later to compare column by column (``declared.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onering_assets.catalog import BronzeTable, Column, SqlTable, load_bronze, sql_table_from
from onering_assets.change.declared import declaration
from onering_assets.lineage.sql import parse_declared_sql
from onering_assets.settings import PLATFORM_DIR

if TYPE_CHECKING:
    from onering_assets.features.views import View

LAYERS = ("bronze", "silver", "gold")
# Which layer tables a SELECT may read, found without parsing it (a superset: a name in a
# comment counts too, which only makes a plan look at one more table).
_READS = re.compile(r"\b(bronze|silver|gold)\s*\.\s*([a-z_][a-z0-9_]*)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """One table's declaration as written: SQL and YAML text, declared columns."""

    layer: str
    name: str
    sql: str = ""
    spec: str = ""
    columns: tuple[tuple[str, str], ...] = ()  # Bronze's and a feature view's
    ddl: str = ""  # Gold: the Liquibase changesets that name the mart

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.name}"

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:20]

    def to_json(self) -> str:
        body = {"layer": self.layer, "name": self.name, "sql": self.sql, "spec": self.spec}
        columns = [list(c) for c in self.columns]
        return json.dumps({**body, "columns": columns, "ddl": self.ddl}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Source:
        data = json.loads(text)
        columns = tuple((str(n), str(t)) for n, t in data.get("columns", []))
        body = (data["layer"], data["name"], data["sql"], data["spec"], columns)
        return cls(*body, data.get("ddl", ""))

    def reads(self) -> set[str]:
        """Keys of the layer tables its SQL names (cheap; see ``_READS``)."""
        return {f"{m[1].lower()}/{m[2].lower()}" for m in _READS.finditer(self.sql)} - {self.key}


def of_table(table: BronzeTable | SqlTable) -> Source:
    """The source a table was loaded from (what a publish records)."""
    if isinstance(table, BronzeTable):
        spec = json.dumps({"partitioned": table.partitioned, "ge_suite": table.ge_suite})
        return Source(
            "bronze", table.name, "", spec, tuple((c.name, c.type) for c in table.columns)
        )
    # Silver's columns are in its YAML; Gold's come from the Liquibase changelogs.
    ddl = _changesets(PLATFORM_DIR).get(table.name, "") if table.layer == "gold" else ""
    return Source(table.layer, table.name, table.declared_sql, table.spec_text, ddl=ddl)


@functools.cache
def _changesets(platform_dir: Path) -> dict[str, str]:
    """Gold's changesets as this process loaded the catalog (``load_catalog`` is cached too)."""
    from onering_assets.gold.ddl import gold_changesets

    return gold_changesets(platform_dir / "versioning" / "liquibase")


def of_view(view: View) -> Source:
    """A feature view's rows (``features/<view>_source``): its SQL and declared features."""
    spec = {
        "entities": list(view.join_keys),
        "features": [[f.name, f.dtype, f.range, f.max_null_pct] for f in view.features],
        "ttl_hours": view.ttl_hours,
        "freshness_hours": view.freshness_hours,
        "inputs": ["/".join(i) for i in view.inputs],
    }
    columns = tuple((f.name, f.dtype) for f in view.features)
    name = f"{view.name}_source"
    return Source("features", name, view.sql, json.dumps(spec, sort_keys=True), columns)


def project_sources(platform_dir: Path) -> dict[str, Source]:
    """Every declared table's source, from the files, without parsing any SELECT."""
    from onering_assets.gold.ddl import gold_changesets

    found = {s.key: s for s in map(of_table, load_bronze(platform_dir))}
    sql_dir = platform_dir / "analytics" / "clickhouse"
    for path in sorted((sql_dir / "silver").glob("*.sql")):
        source = Source("silver", path.stem, path.read_text(), _spec(path))
        found[source.key] = source
    gold = sorted((sql_dir / "gold").glob("*.sql"))
    ddl = gold_changesets(platform_dir / "versioning" / "liquibase") if gold else {}
    for path in gold:
        source = Source(
            "gold", path.stem, path.read_text(), _spec(path), ddl=ddl.get(path.stem, "")
        )
        found[source.key] = source
    from onering_assets.features.views import parse_views

    store = platform_dir / "featurestore"
    views = store / "feast_repo" / "views.yml"
    if views.exists():
        found.update((s.key, s) for s in map(of_view, parse_views(views, store / "sql").views))
    return found


def _spec(sql_path: Path) -> str:
    yml = sql_path.with_suffix(".yml")
    return yml.read_text() if yml.exists() else ""


def table_of(source: Source, sources: dict[str, Source]) -> SqlTable:
    """The Silver or Gold table ``source`` declares, parsed against its upstream's columns.

    ``sources`` gives the upstream tables' columns (the project's current ones: a column's
    derivation does not depend on the types it reads, only on which columns exist).
    """
    reads = tuple(tuple(key.split("/", 1)) for key in sorted(source.reads()))
    schema = schema_for(reads, sources)  # type: ignore[arg-type]
    path = Path(source.layer) / f"{source.name}.sql"
    if source.layer == "features":
        spec = json.loads(source.spec)
        return SqlTable(
            layer="features",
            name=source.name,
            declared_sql=source.sql,
            parsed=parse_declared_sql(source.sql, where=str(path), schema=schema),
            description="",
            columns=tuple(Column(n, t) for n, t in source.columns),
            owners=(),
            key=tuple(spec["entities"]),
            partitioned=False,
            path=path,
            checks=spec,
            spec_text=source.spec,
        )
    columns = None
    if source.layer == "gold":
        from onering_assets.gold.ddl import declared_columns

        columns = declared_columns(source.ddl).get(source.name, ())
    return sql_table_from(source.layer, path, source.sql, source.spec, columns, schema)


def _columns(source: Source, sources: dict[str, Source]) -> dict[str, str]:
    from onering_assets.catalog import INGESTION_TYPES

    if source.layer == "silver":
        import yaml

        spec = yaml.safe_load(source.spec) or {}
        declared = {str(c["name"]): str(c["type"]) for c in spec.get("columns", [])}
    elif source.layer == "gold":
        from onering_assets.gold.ddl import declared_columns

        declared = {c.name: c.type for c in declared_columns(source.ddl).get(source.name, ())}
    else:
        declared = dict(source.columns)
    return {**declared, **INGESTION_TYPES}


def declared(source: Source, sources: dict[str, Source]) -> dict[str, Any]:
    """``declared.declaration`` of a source; Bronze's columns are their own derivation."""
    if source.layer == "bronze":
        columns = {n: {"type": t, "sql": n} for n, t in source.columns}
        body = {"shape": hashlib.sha256(source.spec.encode()).hexdigest()[:16], "checks": ""}
        return {"key": source.key, "fingerprint": source.digest, **body, "columns": columns}
    table = table_of(source, sources)
    found = declaration(table, schema_for(table.upstream, sources))
    if source.ddl:  # a Gold mart's changesets decide its Postgres types: a change re-shapes it
        ddl = hashlib.sha256(source.ddl.encode()).hexdigest()[:16]
        found["shape"] = f"{found['shape']}:{ddl}"
        found["fingerprint"] = f"{found['fingerprint']}:{ddl}"
    return found


def schema_for(
    upstream: tuple[tuple[str, str], ...], sources: dict[str, Source]
) -> dict[str, dict[str, dict[str, str]]]:
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for layer, name in upstream:
        source = sources.get(f"{layer}/{name}")
        if source is not None:
            schema.setdefault(layer, {})[name] = _columns(source, sources)
    return schema
