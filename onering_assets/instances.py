"""Dagster instances of a OneRing state folder: production's and each environment's.

Production's instance is the one the UI, `onering assets` and the catalog read; an
environment's runs go to an instance of its own under ``envs/<name>/dagster``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from onering_assets import instance_config
from onering_assets.namespaces import check_name
from onering_assets.resources.locks import store_lock
from onering_assets.settings import Settings


def write_instance_config(home: Path, profile: str = "local") -> None:
    """OneRing's ``dagster.yaml`` for ``profile`` in ``home``, unless the user wrote their own."""
    instance_config.write(home, profile)


# Instances of a OneRing state folder: their runs are recorded in its catalog outbox.
_STATE_OF: weakref.WeakKeyDictionary[dg.DagsterInstance, Path] = weakref.WeakKeyDictionary()


def state_of(instance: dg.DagsterInstance) -> Path | None:
    """The state folder of production's instance ``instance`` (None for any other)."""
    return _STATE_OF.get(instance)


def instance_for(settings: Settings, env: str = "") -> dg.DagsterInstance:
    """The persistent Dagster instance under the state folder (shared with `onering dev`).

    Runs :func:`execute` starts on it are recorded for the catalog (``lineage/publish.py``).
    An environment's runs (tag ``onering/env``) go to an instance of its own, in
    :func:`env_home`: production's instance (the UI, `onering assets show`, the upstream
    check of `materialize`, gc) never sees them, and they are not production's lineage.
    """
    if env:
        return _instance_for(env_home(settings, check_name(env)), "local")
    instance = _instance_for(settings.dagster_home, settings.profile)
    _STATE_OF[instance] = settings.state_dir
    return instance


def env_home(settings: Settings, env: str) -> Path:
    """The Dagster home of environment ``env``'s runs (removed by `onering env drop`)."""
    return envs_root(settings) / env / "dagster"


def envs_root(settings: Settings) -> Path:
    """The folder of every environment's :func:`env_home`."""
    return settings.state_dir / "envs"


def _instance_for(home: Path, profile: str) -> dg.DagsterInstance:
    write_instance_config(home, profile)
    if profile == "compose":
        instance_config.check_postgres_url()
    os.environ["DAGSTER_HOME"] = str(home)
    ready = home / ".storage-ready"
    if ready.exists():
        return dg.DagsterInstance.get()
    # The first use creates the SQLite storages; two processes doing it at once (parallel
    # Airflow tasks on a fresh state folder) race in Dagster's schema migrations.
    with store_lock(home / ".setup.lock", timeout_s=120, what="Dagster storage setup"):
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.get_latest_materialization_event(dg.AssetKey("onering"))
        instance.all_instigator_state()
        ready.touch()
    return instance


@contextmanager
def env_instance(settings: Settings, env: str) -> Iterator[dg.DagsterInstance]:
    """Environment ``env``'s instance, for a process that goes on with production's after.

    ``instance_for`` points ``DAGSTER_HOME`` at the environment's; this undoes it.
    """
    home = os.environ.get("DAGSTER_HOME")
    try:
        with instance_for(settings, env) as instance:
            yield instance
    finally:
        if home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = home
