"""Pure graph builder: manifest + render config -> DAG plans (no Airflow, no Dagster)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow_bridge.config import RenderConfig
from airflow_bridge.errors import BridgeError
from airflow_bridge.manifest import AssetNode, CheckNode, Manifest

PLAN_VERSION = 1


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


def task_id(key: str) -> str:
    return key.replace("/", "__")


def _dag_of(asset: AssetNode, config: RenderConfig) -> str:
    return config.dag_prefix if config.grouping == "one" else f"{config.dag_prefix}_{asset.group}"


def _topological(assets: list[AssetNode]) -> list[AssetNode]:
    """Assets ordered so every dependency comes first.

    Kahn's algorithm level by level, keys sorted within a level: O(n log n + edges).
    """
    by_key = {a.key: a for a in assets}
    pending = {a.key: len(set(a.deps) & by_key.keys()) for a in assets}
    dependents: dict[str, list[str]] = {}
    for a in assets:
        for dep in set(a.deps) & by_key.keys():
            dependents.setdefault(dep, []).append(a.key)
    ready = sorted(k for k, count in pending.items() if count == 0)
    ordered: list[AssetNode] = []
    while ready:
        ordered += [by_key[k] for k in ready]
        unlocked = []
        for key in ready:
            for child in dependents.get(key, []):
                pending[child] -= 1
                if pending[child] == 0:
                    unlocked.append(child)
        ready = sorted(unlocked)
    if len(ordered) < len(by_key):
        left = sorted(set(by_key) - {a.key for a in ordered})
        raise BridgeError(f"the asset graph has a cycle among {', '.join(left)}.")
    return ordered


def plan_dags(manifest: Manifest, config: RenderConfig) -> list[DagPlan]:
    """One plan per DAG; cross-DAG dependencies become asset-aware schedules."""
    by_key = manifest.by_key()
    members: dict[str, list[AssetNode]] = {}
    for asset in _topological(list(manifest.assets)):
        members.setdefault(_dag_of(asset, config), []).append(asset)
    plans = []
    for dag_id, assets in members.items():
        keys = {a.key for a in assets}
        tasks: list[TaskPlan] = []
        for a in assets:
            tasks.append(
                TaskPlan(
                    task_id=task_id(a.key),
                    asset_keys=(a.key,),
                    upstream=tuple(task_id(d) for d in sorted(a.deps) if d in keys),
                    outlets=(a.uri,),
                    checks=() if config.checks == "none" else a.checks,
                    partitions=a.partitions,
                )
            )
            if config.checks == "separate" and a.checks:
                tasks.append(
                    TaskPlan(
                        task_id=f"{task_id(a.key)}__checks",
                        asset_keys=(a.key,),
                        upstream=(task_id(a.key),),
                        outlets=(),
                        checks=a.checks,
                        partitions=a.partitions,
                        checks_only=True,
                    )
                )
        external = sorted({d for a in assets for d in a.deps if d not in keys})
        default = "assets" if external else None
        schedule = config.schedules.get(dag_id, default)
        if schedule == "none":
            schedule = None
        if schedule == "assets" and not external:
            raise BridgeError(f"{dag_id}: schedule 'assets' needs upstream assets in other DAGs.")
        plans.append(
            DagPlan(
                dag_id=dag_id,
                schedule=schedule,
                schedule_assets=tuple(by_key[d].uri for d in external),
                tasks=tuple(tasks),
                description=f"OneRing assets: {', '.join(sorted(keys))}",
            )
        )
    unknown = sorted(set(config.schedules) - {p.dag_id for p in plans})
    if unknown:
        raise BridgeError(f"schedules name unknown DAG(s) {', '.join(unknown)}.")
    return plans


def plan_to_dict(plan: DagPlan, config: RenderConfig) -> dict[str, Any]:
    """One DAG's plan with the settings it is built with: all a DAG file reads at parse."""
    return {"version": PLAN_VERSION, "render": asdict(config), "plan": asdict(plan)}


def plan_from_dict(raw: dict[str, Any], *, where: str) -> tuple[DagPlan, RenderConfig]:
    if raw.get("version") != PLAN_VERSION:
        raise BridgeError(
            f"{where}: plan version {raw.get('version')!r}; run `onering airflow export`."
        )
    try:
        plan = raw["plan"]
        tasks = tuple(
            TaskPlan(
                task_id=t["task_id"],
                asset_keys=tuple(t["asset_keys"]),
                upstream=tuple(t["upstream"]),
                outlets=tuple(t["outlets"]),
                checks=tuple(CheckNode(c["name"], c["blocking"]) for c in t["checks"]),
                partitions=t["partitions"],
                checks_only=t["checks_only"],
            )
            for t in plan["tasks"]
        )
        dag_plan = DagPlan(
            plan["dag_id"],
            plan["schedule"],
            tuple(plan["schedule_assets"]),
            tasks,
            plan["description"],
        )
        return dag_plan, RenderConfig(**raw["render"]).validate()
    except (KeyError, TypeError) as err:
        raise BridgeError(
            f"{where}: not a OneRing DAG plan ({err}); run `onering airflow export`."
        ) from err
