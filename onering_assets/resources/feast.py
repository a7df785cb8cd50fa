"""Feast's feature store, configured by a profile's ``feature_store.yaml``.

Local: ``platform/featurestore/feast_repo/feature_store.yaml`` (file registry and SQLite
online store under ``<state>/feast``); compose: ``feast_repo/profiles/compose.yaml``
(registry in Postgres, online store in Redis). ``${VARS}`` in the file are filled from the
resource's fields, then from the environment, exactly as the ``feast`` CLI fills them from
the environment. Feast is imported only when a store is opened (it takes seconds).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import yaml
from pydantic import PrivateAttr

from onering_assets.errors import ConfigError
from onering_assets.settings import PLATFORM_DIR, Settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

FEAST_REPO_DIR = PLATFORM_DIR / "featurestore" / "feast_repo"
PROFILE_FILES = {
    "local": FEAST_REPO_DIR / "feature_store.yaml",
    "compose": FEAST_REPO_DIR / "profiles" / "compose.yaml",
}
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute(value: Any, variables: Mapping[str, str], where: str) -> Any:
    """Fill ``${NAME}`` and ``$NAME`` in every string of a parsed YAML value.

    Raises:
        ConfigError: a variable is not set (Feast's CLI would pass the text on unfilled).
    """
    if isinstance(value, dict):
        return {k: substitute(v, variables, where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables, where) for v in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ConfigError(f"{where} needs the variable {name}; set it in the environment.")
        return variables[name]

    return VARIABLE.sub(fill, value)


class FeastResource(dg.ConfigurableResource):
    """A Feast ``FeatureStore`` opened on first use and kept for the run.

    Attributes:
        config_file: the profile's ``feature_store.yaml``.
        repo_dir: Feast's repository folder: relative offline paths resolve against it, and
            a local profile keeps its registry and online database in it (``<state>/feast``).
        registry_url: ``ONERING_FEAST_REGISTRY_URL`` (compose: a SQLAlchemy Postgres URL).
        redis_connection: ``ONERING_REDIS_CONNECTION`` (compose: ``host:port[,password=…]``).
    """

    config_file: str
    repo_dir: str
    registry_url: str | None = None
    redis_connection: str | None = None

    _store: Any = PrivateAttr(default=None)

    @classmethod
    def for_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> FeastResource:
        """The profile's store; compose reads its two variables from ``env`` (now)."""
        env = os.environ if env is None else env
        return cls(
            config_file=str(PROFILE_FILES[settings.profile]),
            repo_dir=str(settings.state_dir / "feast"),
            registry_url=env.get("ONERING_FEAST_REGISTRY_URL"),
            redis_connection=env.get("ONERING_REDIS_CONNECTION"),
        )

    def variables(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """What ``${…}`` in the config file may name: the fields, then the environment."""
        own = {
            "ONERING_FEAST_DIR": self.repo_dir,
            "ONERING_FEAST_REGISTRY_URL": self.registry_url,
            "ONERING_REDIS_CONNECTION": self.redis_connection,
        }
        return {**(os.environ if env is None else env), **{k: v for k, v in own.items() if v}}

    def raw_config(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The config file as a mapping, variables filled (no Feast import)."""
        path = Path(self.config_file)
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"Cannot read the Feast config {path}: {err}.") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level.")
        return substitute(data, self.variables(env), str(path))

    def repo_config(self) -> RepoConfig:
        from feast.repo_config import RepoConfig

        config = RepoConfig(**self.raw_config())
        config.repo_path = Path(self.repo_dir)
        return config

    def store(self) -> FeatureStore:
        """The shared store; a local profile's folder is created on first use."""
        if self._store is None:
            from feast import FeatureStore

            Path(self.repo_dir).mkdir(parents=True, exist_ok=True)
            self._store = FeatureStore(config=self.repo_config())
        return self._store

    def close(self) -> None:
        self._store = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()


def feast_resource(settings: Settings) -> FeastResource:
    """The resource ``definitions.resources_for`` registers as ``feast`` for the profile.

    Compose reads ``ONERING_FEAST_REGISTRY_URL`` and ``ONERING_REDIS_CONNECTION`` through
    ``dg.EnvVar`` when a run starts, never at definitions load.
    """
    if settings.profile == "local":
        return FeastResource(
            config_file=str(PROFILE_FILES["local"]), repo_dir=str(settings.state_dir / "feast")
        )
    return FeastResource(
        config_file=str(PROFILE_FILES["compose"]),
        repo_dir=str(settings.state_dir / "feast"),
        registry_url=dg.EnvVar("ONERING_FEAST_REGISTRY_URL"),  # type: ignore[arg-type]
        redis_connection=dg.EnvVar("ONERING_REDIS_CONNECTION"),  # type: ignore[arg-type]
    )
