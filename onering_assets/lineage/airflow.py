"""The Airflow DAGs exported from the asset graph, as the lineage document lists them.

Planned exactly as ``onering airflow export`` plans them (same snapshot, same render
config), so the catalog names the DAGs and tasks Airflow runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from onering_assets.errors import ConfigError
from onering_assets.settings import PLATFORM_DIR

BRIDGE_CONFIG = PLATFORM_DIR / "orchestration" / "airflow" / "bridge.yml"


def airflow_dags(defs: dg.Definitions, config_path: Path = BRIDGE_CONFIG) -> list[dict[str, Any]]:
    """Each exported DAG: id, description, schedule and tasks (with their assets).

    Raises:
        ConfigError: the bridge configuration cannot be planned.
    """
    from airflow_bridge.config import load_config
    from airflow_bridge.errors import BridgeError
    from airflow_bridge.export import snapshot
    from airflow_bridge.graph import plan_dags

    try:
        config = load_config(config_path)
        plans = plan_dags(snapshot(defs, config), config)
    except BridgeError as err:
        raise ConfigError(f"Airflow export: {err}") from err
    dags = []
    for plan in plans:
        downstream: dict[str, list[str]] = {t.task_id: [] for t in plan.tasks}
        for task in plan.tasks:
            for up in task.upstream:
                downstream.setdefault(up, []).append(task.task_id)
        dags.append(
            {
                "dag_id": plan.dag_id,
                "description": plan.description,
                "schedule": plan.schedule,
                "tasks": [
                    {
                        "task_id": t.task_id,
                        "asset_keys": list(t.asset_keys),
                        "downstream": sorted(downstream[t.task_id]),
                        "checks_only": t.checks_only,
                    }
                    for t in plan.tasks
                ],
            }
        )
    return dags
