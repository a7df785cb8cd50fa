"""Bounded growth: what `onering gc` (and every CLI run, past its limits) deletes.

Four things grow with every run: Dagster's run history (runs and their events in the
event log), the lake's quarantine (one folder per rejected batch), the rejected rows kept
as evidence of failed Silver builds (``silver.<table>_rejects_failed``, one partition per
run) and, after crashes, leftover staging. Published Silver rejects do not grow: each
publish replaces the rejects of the partitions it rebuilds, like the table itself.
Quarantine and failed-build evidence share one age limit (``quarantine_days``).

Run history is pruned to the newest ``keep_runs`` finished runs, never deleting a run that
holds the latest materialization of an asset partition or the latest evaluation of a check:
OneRing reads those to decide what is published (``missing_upstream``), and the UI and
``onering assets show`` read them to show the latest state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg
import pyarrow.fs as pafs
from dagster._core.events import DagsterEventType

from onering_assets.resources import LakeResource

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from onering_assets.settings import Settings

# Runs that may still write: never deleted.
_LIVE = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}


@dataclass
class Retention:
    """How much history to keep (``keep_runs`` newest runs, quarantine for ``days``)."""

    keep_runs: int = 200
    quarantine_days: float = 30.0


@dataclass
class Collected:
    """What one pass deleted and kept."""

    runs_deleted: list[str] = field(default_factory=list)
    runs_pinned: int = 0
    quarantine_deleted: list[str] = field(default_factory=list)
    evidence_deleted: list[str] = field(default_factory=list)
    env_runs_deleted: dict[str, list[str]] = field(default_factory=dict)  # env -> run ids


def pinned_runs(
    instance: dg.DagsterInstance,
    asset_keys: Iterable[dg.AssetKey],
    check_keys: Iterable[dg.AssetCheckKey],
) -> set[str]:
    """Runs holding the latest materialization of some asset partition or check result."""
    pinned: set[str] = set()
    storage = instance.event_log_storage
    for key in asset_keys:
        latest = storage.get_latest_storage_id_by_partition(
            key, DagsterEventType.ASSET_MATERIALIZATION
        )
        ids = sorted(set(latest.values()))
        if ids:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, storage_ids=ids), limit=len(ids)
            ).records
            pinned.update(r.run_id for r in records)
        event = instance.get_latest_materialization_event(key)
        if event is not None:
            pinned.add(event.run_id)
    checks = list(check_keys)
    if checks:
        for record in storage.get_latest_asset_check_execution_by_key(checks).values():
            pinned.add(record.run_id)
    return pinned


def prune_runs(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    keep: int,
) -> tuple[list[str], int]:
    """Delete finished runs beyond the newest ``keep``; return (deleted ids, pinned count)."""
    if instance.get_runs_count() <= keep:
        return [], 0
    graph = defs.resolve_asset_graph()
    pinned = pinned_runs(instance, graph.materializable_asset_keys, graph.asset_check_keys)
    deleted = []
    for run in instance.get_runs()[keep:]:  # newest first
        if run.status in _LIVE or run.run_id in pinned:
            continue
        instance.delete_run(run.run_id)
        deleted.append(run.run_id)
    return deleted, len(pinned)


def prune_quarantine(lake: LakeResource, days: float, now: float | None = None) -> list[str]:
    """Delete quarantined batches (``quarantine/<layer>/<table>/<batch>/``) older than ``days``."""
    fs, base = lake._filesystem()
    root = f"{base}/quarantine"
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    cutoff = (now if now is not None else time.time()) - days * 86400
    deleted = []
    for table_dir in fs.get_file_info(pafs.FileSelector(root, recursive=False)):
        for table in fs.get_file_info(pafs.FileSelector(table_dir.path, recursive=False)):
            for batch in fs.get_file_info(pafs.FileSelector(table.path, recursive=False)):
                files = fs.get_file_info(pafs.FileSelector(batch.path, recursive=True))
                newest = max(
                    (f.mtime.timestamp() for f in files if f.mtime is not None), default=0.0
                )
                if newest < cutoff:
                    fs.delete_dir(batch.path)
                    deleted.append(batch.path.removeprefix(f"{base}/"))
    return deleted


def prune_failed_rejects(client: Client, days: float) -> list[str]:
    """Drop the evidence of failed Silver builds (``<table>_rejects_failed``) older than ``days``.

    Production's and every environment's (``silver__<env>``). Returns
    ``<database>.<table>:<run id>`` for each run dropped.
    """
    tables = client.query(
        "SELECT database, name FROM system.tables WHERE (database = 'silver'"
        " OR startsWith(database, 'silver__')) AND endsWith(name, '_rejects_failed')"
    ).result_rows
    deleted = []
    for database, name in tables:
        runs = client.query(
            f"SELECT _run_id FROM `{database}`.`{name}` GROUP BY _run_id "
            "HAVING max(_failed_at) < now() - toIntervalSecond({age:Int64})",
            parameters={"age": int(days * 86400)},
        ).result_rows
        for (run,) in runs:
            client.command(
                f"ALTER TABLE `{database}`.`{name}` DROP PARTITION {{run:String}}",
                parameters={"run": run},
            )
            deleted.append(f"{database}.{name}:{run}")
    return deleted


def prune_env_runs(settings: Settings, defs: dg.Definitions, keep: int) -> dict[str, list[str]]:
    """Per environment, its Dagster runs deleted as :func:`prune_runs` deletes production's.

    An environment's runs are in an instance of its own (``instances.env_home``), kept until
    ``onering env drop``; this bounds them meanwhile.
    """
    from onering_assets.errors import ConfigError
    from onering_assets.instances import env_instance, envs_root
    from onering_assets.namespaces import check_name

    deleted: dict[str, list[str]] = {}
    root = envs_root(settings)
    for folder in sorted(root.glob("*/dagster/.storage-ready")) if root.is_dir() else []:
        name = folder.parent.parent.name  # an instance a run made, never a stray folder
        try:
            check_name(name)
        except ConfigError:  # not an environment's name
            continue
        with env_instance(settings, name) as instance:
            deleted[name] = prune_runs(instance, defs, keep)[0]
    return deleted


def collect(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    lake: LakeResource,
    retention: Retention,
    client: Client | None = None,
    settings: Settings | None = None,
) -> Collected:
    """One pass over run history, quarantine and (given a Silver client) failed-build evidence.

    Given ``settings``, the environments' run history too.
    """
    runs, pinned = prune_runs(instance, defs, retention.keep_runs)
    done = Collected(runs, pinned, prune_quarantine(lake, retention.quarantine_days))
    if settings is not None:
        done.env_runs_deleted = prune_env_runs(settings, defs, retention.keep_runs)
    if client is not None:
        done.evidence_deleted = prune_failed_rejects(client, retention.quarantine_days)
    return done
