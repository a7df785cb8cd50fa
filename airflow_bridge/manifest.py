"""The versioned asset-graph manifest: what Airflow parses instead of Dagster definitions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airflow_bridge.errors import BridgeError
from airflow_bridge.formats import MANIFEST_FILE, MANIFEST_VERSION

__all__ = ["MANIFEST_FILE", "AssetNode", "CheckNode", "Manifest", "load", "loads"]


@dataclass(frozen=True)
class CheckNode:
    name: str
    blocking: bool


@dataclass(frozen=True)
class AssetNode:
    """One asset as the bridge needs it; keys are ``layer/table``."""

    key: str
    group: str
    deps: tuple[str, ...]
    partitions: dict[str, str] | None
    checks: tuple[CheckNode, ...]
    owners: tuple[str, ...]
    tags: dict[str, str]
    uri: str
    openmetadata: dict[str, str] = field(default_factory=dict)
    description: str = ""
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """The graph, the render settings, and what their selections resolved to.

    ``selections`` maps each selection string of the render config (``select``,
    ``exclude``, ``dags``) to the keys Dagster resolved it to at export time, so planning
    and DAG parsing never parse a selection themselves.
    """

    code_location: str
    assets: tuple[AssetNode, ...]
    render: dict[str, Any] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    selections: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def by_key(self) -> dict[str, AssetNode]:
        return {a.key: a for a in self.assets}

    def selected(self, expression: str) -> set[str]:
        """The keys ``expression`` resolved to at export (``*`` is every asset)."""
        if expression == "*":
            return {a.key for a in self.assets}
        if expression not in self.selections:
            raise BridgeError(
                f"selection {expression!r} was not resolved at export; "
                "run `onering airflow export`."
            )
        return set(self.selections[expression])

    def dumps(self) -> str:
        """Canonical JSON: same graph, same bytes."""
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"


def _asset(raw: dict[str, Any]) -> AssetNode:
    return AssetNode(
        key=raw["key"],
        group=raw["group"],
        deps=tuple(raw["deps"]),
        partitions=raw.get("partitions"),
        checks=tuple(CheckNode(c["name"], bool(c["blocking"])) for c in raw["checks"]),
        owners=tuple(raw.get("owners", ())),
        tags=dict(raw.get("tags", {})),
        uri=raw["uri"],
        openmetadata=dict(raw.get("openmetadata", {})),
        description=raw.get("description", ""),
        kinds=tuple(raw.get("kinds", ())),
    )


def loads(text: str, *, where: str = "manifest") -> Manifest:
    try:
        raw = json.loads(text)
        if raw.get("version") != MANIFEST_VERSION:
            raise BridgeError(
                f"{where}: manifest version {raw.get('version')!r}, this bridge reads "
                f"{MANIFEST_VERSION}; run `onering airflow export`."
            )
        return Manifest(
            raw["code_location"],
            tuple(_asset(a) for a in raw["assets"]),
            dict(raw["render"]),
            selections={k: tuple(v) for k, v in raw.get("selections", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as err:
        raise BridgeError(
            f"{where}: not a OneRing manifest ({err}); run `onering airflow export`."
        ) from err


def load(path: Path) -> Manifest:
    if not path.exists():
        raise BridgeError(f"{path} is missing; run `onering airflow export`.")
    return loads(path.read_text(), where=str(path))
