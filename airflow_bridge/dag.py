"""Build Airflow DAGs from the manifest at parse time: JSON in, DAG out, no Dagster import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset

from airflow_bridge.config import RenderConfig
from airflow_bridge.errors import BridgeError
from airflow_bridge.graph import DagPlan, plan_dags
from airflow_bridge.manifest import load
from airflow_bridge.operator import DagsterAssetsOperator

START = datetime(2013, 1, 1, tzinfo=UTC)


def build_dag(plan: DagPlan, config: RenderConfig) -> DAG:
    schedule: object = plan.schedule
    if plan.schedule == "assets":
        schedule = [Asset(uri) for uri in plan.schedule_assets]
    dag = DAG(
        dag_id=plan.dag_id,
        description=plan.description,
        schedule=schedule,  # type: ignore[arg-type]
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["onering"],
        default_args={
            "owner": config.owner,
            "retries": config.retries,
            "retry_delay": timedelta(seconds=config.retry_delay_s),
        },
    )
    tasks = {}
    for task in plan.tasks:
        tasks[task.task_id] = DagsterAssetsOperator(
            task_id=task.task_id,
            dag=dag,
            asset_keys=task.asset_keys,
            partitions=task.partitions,
            mode=config.mode,
            python=config.python,
            dagster_url=config.dagster_url,
            dagster_token_env=config.dagster_token_env,
            run_checks=bool(task.checks),
            checks_only=task.checks_only,
            outlets=[Asset(uri) for uri in task.outlets],
        )
    for task in plan.tasks:
        for upstream in task.upstream:
            tasks[task.task_id].set_upstream(tasks[upstream])
    return dag


def load_dag(manifest_path: Path, dag_id: str) -> DAG:
    """The DAG ``dag_id`` rendered from the manifest next to the DAG file."""
    manifest = load(manifest_path)
    config = RenderConfig(**manifest.render).validate()
    plan = next((p for p in plan_dags(manifest, config) if p.dag_id == dag_id), None)
    if plan is None:
        raise BridgeError(f"{manifest_path} has no DAG {dag_id!r}; run `onering airflow export`.")
    return build_dag(plan, config)
