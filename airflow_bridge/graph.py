"""Pure graph builder: manifest + render config -> DAG plans (no Airflow, no Dagster)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow_bridge.config import RenderConfig
from airflow_bridge.errors import BridgeError
from airflow_bridge.formats import MONTHLY, PLAN_VERSION
from airflow_bridge.manifest import AssetNode, CheckNode, Manifest
from airflow_bridge.partitions import cron_window


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    asset_keys: tuple[str, ...]
    upstream: tuple[str, ...]
    outlets: tuple[str, ...]
    checks: tuple[CheckNode, ...]
    partitions: dict[str, str] | None
    checks_only: bool = False


@dataclass(frozen=True)
class DagPlan:
    dag_id: str
    schedule: str | None
    schedule_assets: tuple[str, ...]
    tasks: tuple[TaskPlan, ...]
    description: str
    partitions: dict[str, str] | None = None
    schedule_fmts: tuple[str | None, ...] = ()
    # A partitioned cron DAG's first and last run (``cron_window``): its start/end dates.
    schedule_window: dict[str, str] | None = None


def dag_partitions(dag_id: str, assets: list[AssetNode]) -> dict[str, str] | None:
    """The partitions a DAG's runs are keyed by: those of its partitioned assets.

    One Airflow partition key per run, so a DAG's partitioned assets share one format.
    """
    specs = [a.partitions for a in assets if a.partitions]
    if not specs:
        return None
    fmts = sorted({s.get("fmt", MONTHLY) for s in specs})
    if len(fmts) > 1:
        raise BridgeError(
            f"{dag_id}: assets partitioned by {' and '.join(fmts)} in one DAG; "
            "group them into separate DAGs."
        )
    return {
        "start": min(s["start"] for s in specs),
        "end": max(s["end"] for s in specs),
        "fmt": fmts[0],
    }


def task_id(key: str) -> str:
    return key.replace("/", "__")


def _kahn(deps: dict[str, set[str]], what: str) -> list[str]:
    """Node names ordered so every dependency comes first (deps outside ``deps`` ignored).

    Kahn's algorithm level by level, names sorted within a level: O(n log n + edges).
    """
    pending = {n: len(d & deps.keys()) for n, d in deps.items()}
    dependents: dict[str, list[str]] = {}
    for node, ups in deps.items():
        for up in ups & deps.keys():
            dependents.setdefault(up, []).append(node)
    ready = sorted(n for n, count in pending.items() if count == 0)
    ordered: list[str] = []
    while ready:
        ordered += ready
        unlocked = []
        for node in ready:
            for child in dependents.get(node, []):
                pending[child] -= 1
                if pending[child] == 0:
                    unlocked.append(child)
        ready = sorted(unlocked)
    if len(ordered) < len(deps):
        left = sorted(set(deps) - set(ordered))
        raise BridgeError(f"{what} has a cycle among {', '.join(left)}.")
    return ordered


def _selected(manifest: Manifest, config: RenderConfig) -> list[AssetNode]:
    """The assets ``select`` minus ``exclude`` picks, dependencies first.

    Dagster resolved the strings at export (:func:`airflow_bridge.export.snapshot`).
    """
    chosen = manifest.selected(config.select)
    if config.exclude:
        chosen -= manifest.selected(config.exclude)
    if not chosen and config.env:
        raise BridgeError(
            f"bridge.yml exports no Silver or Gold table, all environment {config.env!r} holds."
        )
    if not chosen:
        raise BridgeError(f"select {config.select!r} / exclude {config.exclude!r} leave no assets.")
    by_key = manifest.by_key()
    order = _kahn({a.key: set(a.deps) for a in manifest.assets}, "the asset graph")
    return [by_key[k] for k in order if k in chosen]


def _members(manifest: Manifest, config: RenderConfig) -> dict[str, list[AssetNode]]:
    """DAG id -> its assets in dependency order."""
    assets = _selected(manifest, config)
    if config.grouping == "one":
        return {config.dag_prefix: assets}
    if config.grouping == "group":
        members: dict[str, list[AssetNode]] = {}
        for a in assets:
            members.setdefault(f"{config.dag_prefix}_{a.group}", []).append(a)
        return members
    exported = {a.key for a in assets}
    dag_keys = {dag_id: manifest.selected(expr) & exported for dag_id, expr in config.dags.items()}
    owners: dict[str, list[str]] = {}
    for dag_id, keys in dag_keys.items():
        for key in keys:
            owners.setdefault(key, []).append(dag_id)
    shared = sorted(k for k, dags in owners.items() if len(dags) > 1)
    if shared:
        raise BridgeError(
            f"dags: {shared[0]} is selected by {' and '.join(owners[shared[0]])} "
            f"({len(shared)} asset(s) in several DAGs); make the selections disjoint."
        )
    if config.env:  # an environment exports the part of each DAG it holds, if any
        dag_keys = {d: keys for d, keys in dag_keys.items() if keys}
    empty = sorted(d for d, keys in dag_keys.items() if not keys)
    if empty:
        raise BridgeError(f"dags: {', '.join(empty)} select(s) no assets.")
    return {d: [a for a in assets if a.key in keys] for d, keys in dag_keys.items()}


def _units(assets: list[AssetNode], config: RenderConfig) -> list[tuple[str, list[AssetNode]]]:
    """A DAG's tasks as (task id, assets): one per asset, or one per asset group."""
    if config.tasks == "asset":
        return [(task_id(a.key), [a]) for a in assets]
    groups: dict[str, list[AssetNode]] = {}
    for a in assets:
        groups.setdefault(a.group, []).append(a)
    group_of = {a.key: a.group for a in assets}
    deps = {
        g: {group_of[d] for a in members for d in a.deps if d in group_of} - {g}
        for g, members in groups.items()
    }
    return [(g, groups[g]) for g in _kahn(deps, "the asset groups' graph")]


def _tasks(assets: list[AssetNode], config: RenderConfig, dag_id: str) -> list[TaskPlan]:
    unit_of: dict[str, str] = {}
    units = _units(assets, config)
    for unit, members in units:
        unit_of.update(dict.fromkeys((a.key for a in members), unit))
    tasks: list[TaskPlan] = []
    for unit, members in units:
        checks = tuple(c for a in members for c in a.checks)
        partitions = dag_partitions(f"{dag_id}.{unit}", members)
        tasks.append(
            TaskPlan(
                task_id=unit,
                asset_keys=tuple(a.key for a in members),
                upstream=tuple(
                    sorted({unit_of[d] for a in members for d in a.deps if d in unit_of} - {unit})
                ),
                outlets=tuple(a.uri for a in members),
                checks=() if config.checks == "none" else checks,
                partitions=partitions,
            )
        )
        if config.checks == "separate" and checks:
            tasks.append(
                TaskPlan(
                    task_id=f"{unit}__checks",
                    asset_keys=tuple(a.key for a in members),
                    upstream=(unit,),
                    outlets=(),
                    checks=checks,
                    partitions=partitions,
                    checks_only=True,
                )
            )
    return tasks


def plan_dags(manifest: Manifest, config: RenderConfig) -> list[DagPlan]:
    """One plan per DAG; cross-DAG dependencies become asset-aware schedules."""
    by_key = manifest.by_key()
    members = _members(manifest, config)
    dag_of = {a.key: dag_id for dag_id, assets in members.items() for a in assets}
    parts = {dag_id: dag_partitions(dag_id, assets) for dag_id, assets in members.items()}
    plans = []
    for dag_id, assets in members.items():
        keys = {a.key for a in assets}
        # Upstream assets made by other DAGs; those no DAG makes are not waited for.
        external = sorted({d for a in assets for d in a.deps if d not in keys and d in dag_of})
        # Asset-triggered by default only when every upstream DAG is partitioned like this one
        # (Airflow queues keyed events for partition-aware DAGs only, and plain ones for plain
        # DAGs): otherwise no schedule unless bridge.yml gives one, never runs keyed wrongly.
        fmts = {_fmt(parts[dag_of[d]]) for d in external}
        default = "assets" if external and fmts == {_fmt(parts[dag_id])} else None
        schedule = config.schedules.get(dag_id, default)
        if schedule == "none":
            schedule = None
        if schedule == "assets" and not external:
            raise BridgeError(f"{dag_id}: schedule 'assets' needs upstream assets in other DAGs.")
        spec = parts[dag_id]
        cron = schedule not in (None, "assets")
        window = cron_window(dag_id, str(schedule), spec) if cron and spec else None
        waits = tuple(by_key[d].uri for d in external)
        keyed = tuple(_fmt(parts[dag_of[d]]) for d in external)
        if config.env and schedule is None and spec:
            # An environment's first DAG runs by hand only, yet takes a partition key, which
            # Airflow accepts for a partition-aware timetable only: one on an asset no task
            # updates.
            schedule, waits, keyed = "assets", (manual_asset(config.env),), (_fmt(spec),)
        plans.append(
            DagPlan(
                dag_id=dag_id,
                schedule=schedule,
                schedule_assets=waits,
                tasks=tuple(_tasks(assets, config, dag_id)),
                description=f"OneRing assets: {', '.join(sorted(keys))}",
                partitions=parts[dag_id],
                schedule_fmts=keyed,
                schedule_window=window,
            )
        )
    unknown = sorted(set(config.schedules) - {p.dag_id for p in plans})
    if unknown:
        raise BridgeError(f"schedules name unknown DAG(s) {', '.join(unknown)}.")
    return plans


def manual_asset(env: str) -> str:
    """The Airflow asset an environment's first DAGs wait for: nothing updates it."""
    return f"onering://manual?env={env}"


def _fmt(spec: dict[str, str] | None) -> str | None:
    return spec.get("fmt", MONTHLY) if spec else None


def plan_to_dict(plan: DagPlan, config: RenderConfig) -> dict[str, Any]:
    """One DAG's plan with the settings it is built with: all a DAG file reads at parse."""
    return {"version": PLAN_VERSION, "render": asdict(config), "plan": asdict(plan)}
