"""Dagster's ``dagster.yaml`` for each profile, from one place.

- ``local``: Dagster's SQLite storage under the state folder, its event log through
  ``onering_assets.eventlog`` (the same files, connections kept open: 7.2 s instead of
  10.5 s per 1x medallion run); runs launched from the UI queue and run one at a time
  (chDB has one owner per directory).
- ``compose``: run, event-log and schedule storage on Postgres (dagster-postgres), its URL
  read from ``ONERING_DAGSTER_POSTGRES_URL`` when the instance loads (the password never
  enters the file); the same queue; run monitoring, so a run whose worker died is marked
  failed instead of staying STARTED. The URL's scheme must be ``postgresql+psycopg2``:
  with SQLAlchemy 2.1 a bare ``postgresql://`` means psycopg 3, on which dagster-postgres'
  ``NOTIFY`` fails (``check_postgres_url`` says so before Dagster does).

OneRing writes the file into ``$DAGSTER_HOME`` with a first line naming the profile, and
rewrites such a file whenever it differs from what this code writes (another profile, an
older OneRing, or an edit: to keep your own settings, delete that first line). A file
without it is yours: this module never rewrites it (``onering dev`` only adds the UI's
``nux: enabled: false`` when it has no ``nux`` setting).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from onering_assets.errors import ConfigError

MARKER = "# Written by OneRing for the {profile} profile (onering_assets/instance_config.py)."
POSTGRES_URL_ENV = "ONERING_DAGSTER_POSTGRES_URL"

# Runs launched from the UI (or the bridge's dagster_graphql mode) queue and run one at a
# time. The daemon looks at the queue every second (Dagster's default, 5 s, was most of a
# launched task's overhead: bench/airflow_tasks.py).
_QUEUE = {
    "module": "dagster._core.run_coordinator",
    "class": "QueuedRunCoordinator",
    "config": {"max_concurrent_runs": 1, "dequeue_interval_seconds": 1},
}


def instance_config(profile: str, home: Path | None = None) -> dict[str, Any]:
    """The instance's configuration for ``profile`` (``local`` or ``compose``).

    ``home``: the ``DAGSTER_HOME`` the file is for (the local event log's folder, where
    Dagster's default SQLite event log keeps it: ``history/runs``).
    """
    config: dict[str, Any] = {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},  # the UI's community dialog, at every first visit
        "run_coordinator": _QUEUE,
    }
    if profile == "compose":
        config["storage"] = {"postgres": {"postgres_url": {"env": POSTGRES_URL_ENV}}}
        config["run_monitoring"] = {"enabled": True, "start_timeout_seconds": 180}
    elif home is not None:
        config["event_log_storage"] = {
            "module": "onering_assets.eventlog",
            "class": "PooledSqliteEventLogStorage",
            "config": {"base_dir": str(home.resolve() / "history" / "runs")},
        }
    return config


def render(profile: str, home: Path | None = None) -> str:
    header = MARKER.format(profile=profile)
    return f"{header}\n{yaml.safe_dump(instance_config(profile, home), sort_keys=False)}"


def write(home: Path, profile: str) -> bool:
    """Write the profile's ``dagster.yaml`` into ``home`` unless the user wrote their own.

    Returns whether the file was (re)written. The write is atomic: a reader (the daemon, a
    parallel task) sees the old file or the new one.
    """
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = render(profile, home)
    if config.exists():
        text = config.read_text()
        if text == wanted or not text.startswith("# Written by OneRing"):
            return False
    partial = config.with_name(f".dagster.yaml.{os.getpid()}.tmp")
    partial.write_text(wanted)
    partial.replace(config)
    return True


def check_postgres_url(env: dict[str, str] | None = None) -> None:
    """Raise ConfigError unless ``ONERING_DAGSTER_POSTGRES_URL`` is set with the right scheme."""
    url = (os.environ if env is None else env).get(POSTGRES_URL_ENV, "").strip()
    if not url:
        raise ConfigError(
            f"Set {POSTGRES_URL_ENV} (postgresql+psycopg2://user:password@host:5432/dagster): "
            "the compose profile keeps Dagster's runs and events in Postgres."
        )
    scheme, separator, _ = url.partition("://")
    if scheme != "postgresql+psycopg2":
        # Only a scheme is ever named: whatever else the value holds may be a password.
        named = separator and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,30}", scheme)
        found = f"not {scheme}://" if named else "its value has no scheme"
        raise ConfigError(
            f"{POSTGRES_URL_ENV} must start postgresql+psycopg2:// ({found}): "
            "dagster-postgres needs psycopg2, and SQLAlchemy reads a bare postgresql:// as "
            "psycopg 3."
        )


def main() -> int:
    """``python -m onering_assets.instance_config``: the profile's file into ``$DAGSTER_HOME``.

    What a container runs before ``dagster-webserver`` or ``dagster-daemon`` (which read the
    file but never write it); exits 2 with one line when the profile's storage is not set.
    """
    import sys

    from onering_assets.settings import Settings

    try:
        settings = Settings.from_env()
        home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
        if settings.profile == "compose":
            check_postgres_url()
        written = write(home, settings.profile)
    except ConfigError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    state = "written" if written else "kept (unchanged, or your own)"
    sys.stdout.write(f"{home / 'dagster.yaml'}: {settings.profile} profile, {state}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
