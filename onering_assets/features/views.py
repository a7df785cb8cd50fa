"""The feature views declared in ``platform/featurestore/feast_repo/views.yml`` (no Feast here).

Dagster declares one asset per view from this file at definitions load, so nothing here
imports Feast; ``onering_assets.features.objects`` turns the same declaration into Feast
objects inside the steps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from onering_assets.catalog import identifier
from onering_assets.errors import ConfigError
from onering_assets.settings import PLATFORM_DIR

FEATURESTORE_DIR = PLATFORM_DIR / "featurestore"
FEAST_REPO_DIR = FEATURESTORE_DIR / "feast_repo"
VIEWS_FILE = FEAST_REPO_DIR / "views.yml"
SQL_DIR = FEATURESTORE_DIR / "sql"
DTYPES = ("Int64", "Float64", "String")
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"


@dataclass(frozen=True)
class EntityDecl:
    """An entity: its name, the column that joins it, and what it is."""

    name: str
    join_key: str
    description: str = ""


@dataclass(frozen=True)
class Feature:
    """One feature column with its declared type, physical range and null tolerance."""

    name: str
    dtype: str
    range: tuple[float, float] | None
    max_null_pct: float
    description: str = ""


@dataclass(frozen=True)
class View:
    """One feature view: keys, features, the SQL computing its offline rows, its inputs."""

    name: str
    description: str
    entities: tuple[EntityDecl, ...]
    features: tuple[Feature, ...]
    sql_path: Path
    inputs: tuple[tuple[str, str], ...]
    ttl_hours: float
    freshness_hours: float
    owners: tuple[str, ...]

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(e.join_key for e in self.entities)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def refs(self) -> tuple[str, ...]:
        """Feast feature references, ``view:feature``."""
        return tuple(f"{self.name}:{f.name}" for f in self.features)

    @property
    def columns(self) -> tuple[str, ...]:
        """The offline rows' columns, in order."""
        return (*self.join_keys, EVENT_TIMESTAMP, *self.feature_names, CREATED_TIMESTAMP)

    @property
    def sql(self) -> str:
        return self.sql_path.read_text()


@dataclass(frozen=True)
class Views:
    """Every declared entity and view."""

    entities: tuple[EntityDecl, ...]
    views: tuple[View, ...]

    def view(self, name: str) -> View:
        for view in self.views:
            if view.name == name:
                return view
        known = ", ".join(v.name for v in self.views)
        raise ConfigError(f"No feature view {name!r}; declared: {known}.")

    @property
    def refs(self) -> tuple[str, ...]:
        """Every feature reference, view by view."""
        return tuple(ref for view in self.views for ref in view.refs)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(name for view in self.views for name in view.feature_names)

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(e.join_key for e in self.entities)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping.")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: {value!r} must be a non-negative number.")
    return float(value)


def _feature(raw: Any, where: str) -> Feature:
    raw = _mapping(raw, where)
    name = identifier(str(raw.get("name", "")), where=where)
    dtype = raw.get("dtype")
    if dtype not in DTYPES:
        raise ConfigError(f"{where}: {name}: dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    bounds = raw.get("range")
    if bounds is not None:
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise ConfigError(f"{where}: {name}: range must be [min, max].")
        lo, hi = (_signed(b, f"{where}: {name}: range") for b in bounds)
        if lo > hi:
            raise ConfigError(f"{where}: {name}: range [{lo:g}, {hi:g}] is empty.")
        bounds = (lo, hi)
    null_pct = _number(raw.get("max_null_pct", 0), f"{where}: {name}: max_null_pct")
    return Feature(name, dtype, bounds, null_pct, str(raw.get("description", "")))


def _signed(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {value!r} is not a number.")
    return float(value)


def _input(raw: Any, where: str) -> tuple[str, str]:
    layer, _, table = str(raw).partition("/")
    if layer not in ("silver", "gold") or not table:
        raise ConfigError(f"{where}: input {raw!r} must be silver/<table> or gold/<table>.")
    return layer, identifier(table, where=where)


def _view(name: str, raw: Any, entities: dict[str, EntityDecl], sql_dir: Path, where: str) -> View:
    where = f"{where}: views.{name}"
    raw = _mapping(raw, where)
    missing = [e for e in raw.get("entities", []) if e not in entities]
    if missing or not raw.get("entities"):
        raise ConfigError(f"{where}: entities {missing or '[]'} are not declared entities.")
    features = tuple(_feature(f, where) for f in raw.get("features", []))
    if not features:
        raise ConfigError(f"{where}: declare at least one feature.")
    sql_path = sql_dir / str(raw.get("sql", f"{name}.sql"))
    if not sql_path.is_file():
        raise ConfigError(f"{where}: its SQL file {sql_path} does not exist.")
    return View(
        name=identifier(name, where=where),
        description=str(raw.get("description", "")),
        entities=tuple(entities[e] for e in raw["entities"]),
        features=features,
        sql_path=sql_path,
        inputs=tuple(_input(i, where) for i in raw.get("inputs", [])),
        ttl_hours=_number(raw.get("ttl_hours", 24), f"{where}: ttl_hours"),
        freshness_hours=_number(raw.get("freshness_hours", 24), f"{where}: freshness_hours"),
        owners=tuple(raw.get("owners", ())),
    )


def parse_views(path: Path, sql_dir: Path = SQL_DIR) -> Views:
    """Read and validate a views file.

    Raises:
        ConfigError: the file is not valid YAML, or a view is malformed (the message says
            which view and field).
    """
    try:
        data = _mapping(yaml.safe_load(path.read_text()) or {}, str(path))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    entities = {
        name: EntityDecl(
            identifier(name, where=f"{path}: entities"),
            identifier(str(e.get("join_key", name)), where=f"{path}: entities.{name}"),
            str(e.get("description", "")),
        )
        for name, e in _mapping(data.get("entities", {}), f"{path}: entities").items()
    }
    views = tuple(
        _view(name, raw, entities, sql_dir, str(path))
        for name, raw in _mapping(data.get("views", {}), f"{path}: views").items()
    )
    names = [f for v in views for f in v.feature_names]
    clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(entities)))
    if clashes:
        raise ConfigError(f"{path}: feature names must be unique across views: {clashes}.")
    return Views(tuple(entities.values()), views)


@functools.cache
def load_views() -> Views:
    """The project's declared views (read once per process)."""
    return parse_views(VIEWS_FILE)
