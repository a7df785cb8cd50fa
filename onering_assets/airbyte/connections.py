"""The Airbyte connections declared as YAML under ``platform/ingestion/airbyte/``.

One file per connection (its name is the file's stem): ``source`` (a connector with an
environment under ``envs/airbyte/connectors/``), its ``config``, the ``streams`` to read,
``description`` and ``owners``. ``${source_dir}`` in a config value is the folder Bronze
reads its landed files from. A file that is not such a declaration is refused in one line
naming the file and the problem, when definitions load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from onering_assets.errors import ConfigError
from onering_assets.settings import PLATFORM_DIR, PROJECT_ROOT

CONNECTIONS_DIR = PLATFORM_DIR / "ingestion" / "airbyte"
CONNECTORS_DIR = PROJECT_ROOT / "envs" / "airbyte" / "connectors"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SOURCE = re.compile(r"^source-[a-z0-9-]+$")
KEYS = {"description", "source", "owners", "config", "streams"}


@dataclass(frozen=True)
class Connection:
    name: str
    source: str
    config: dict[str, Any]
    streams: tuple[str, ...]
    description: str = ""
    owners: tuple[str, ...] = field(default_factory=tuple)

    def resolved(self, source_dir: Path) -> dict[str, Any]:
        """What the Airbyte environment receives: the config with ``${source_dir}`` filled."""

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("${source_dir}", str(source_dir))
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value

        return {
            "name": self.name,
            "source": self.source,
            "config": fill(self.config),
            "streams": list(self.streams),
        }


def _connector(source: str) -> bool:
    """Whether ``source`` has an environment, a folder of its own under ``CONNECTORS_DIR``."""
    folder = (CONNECTORS_DIR / source).resolve()
    return folder.parent == CONNECTORS_DIR.resolve() and (folder / "pyproject.toml").is_file()


def _field_problems(raw: dict[str, Any]) -> list[str]:
    """What is wrong with the streams, description, owners and source (empty: nothing)."""
    problems: list[str] = []
    streams = raw.get("streams", [])
    if (
        not isinstance(streams, list)
        or not streams
        or not all(isinstance(s, str) and NAME.match(s) for s in streams)
    ):
        problems.append("'streams' must be a non-empty list of lowercase names")
    elif len(set(streams)) < len(streams):
        twice = sorted({s for s in streams if streams.count(s) > 1})
        problems.append(f"'streams' lists {', '.join(twice)} more than once")
    if not isinstance(raw.get("description", ""), str):
        problems.append("'description' must be a string")
    owners = raw.get("owners", [])
    if not isinstance(owners, list) or not all(isinstance(o, str) and o for o in owners):
        problems.append("'owners' must be a list of strings, e.g. [team:data-platform]")
    source = raw.get("source", "source-")
    if not isinstance(source, str) or not SOURCE.match(source):
        problems.append(f"'source' must be a connector name like source-faker, not {source!r}")
    elif "source" in raw and not _connector(source):
        known = sorted(p.name for p in CONNECTORS_DIR.iterdir() if p.is_dir())
        problems.append(f"no connector environment for {source!r} (have: {', '.join(known)})")
    return problems


def parse(path: Path) -> Connection:
    """One declaration, or a ConfigError naming the file and what is wrong."""
    where = f"{path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}"
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not YAML ({' '.join(str(err).split())}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with source, config and streams.")
    problems = [f"unknown key {k!r}" for k in sorted(set(raw) - KEYS)]
    problems += [f"missing {k!r}" for k in ("source", "config", "streams") if k not in raw]
    if not NAME.match(path.stem):
        problems.append("the file's name must be lowercase letters, digits and _")
    if not isinstance(raw.get("config", {}), dict):
        problems.append("'config' must be a mapping")
    problems += _field_problems(raw)
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}.")
    return Connection(
        name=path.stem,
        source=raw["source"],
        config=dict(raw["config"]),
        streams=tuple(raw["streams"]),
        description=str(raw.get("description", "")).strip(),
        owners=tuple(raw.get("owners", ())),
    )


def load_connections(folder: Path = CONNECTIONS_DIR) -> list[Connection]:
    return [parse(p) for p in sorted(folder.glob("*.yml"))] if folder.is_dir() else []
