"""Typed, validated render config: how the asset graph becomes DAGs and tasks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from airflow_bridge.errors import BridgeError

GROUPINGS = ("group", "selection", "one")
TASKS = ("asset", "group")
CHECK_MODES = ("with_asset", "separate", "none")
MODES = ("in_process", "subprocess", "dagster_graphql")


@dataclass(frozen=True)
class RenderConfig:
    """What `onering airflow export` renders.

    Attributes:
        dag_prefix: DAG ids are ``<prefix>_<group>`` (or ``<prefix>`` with grouping ``one``).
        grouping: one DAG per asset group (``group``), one per entry of ``dags``
            (``selection``), or one DAG for everything (``one``).
        dags: with grouping ``selection``, DAG id -> Dagster selection string; the
            selections must not overlap, assets none selects are not exported.
        tasks: one task per asset (``asset``), or one per asset group (``group``: a single
            Dagster run for the group's assets, in dependency order).
        select, exclude: Dagster selection strings; only ``select`` minus ``exclude`` is
            exported (upstream assets left out are not waited for).
        checks: ``with_asset`` (default): checks run in the asset's task and gate
            publication; ``separate``: the same, plus a ``<task>__checks`` task after each
            asset that re-runs its checks on what was published; ``none``: no checks (and so
            no gate).
        schedules: per DAG id, a cron string, ``@monthly``-style preset, ``assets`` (run
            when the upstream DAGs' Airflow Assets update) or ``none``.
        mode: how a task runs Dagster: ``in_process``, ``subprocess`` or ``dagster_graphql``.
        python: the interpreter whose ``onering`` runs the subprocess mode.
        dagster_url: the Dagster webserver the ``dagster_graphql`` mode launches runs on.
        dagster_token_env: name of the environment variable (read by the worker at run
            time, never exported) holding a bearer token for that webserver.
        retries, retry_delay_s, owner: task default_args.
        publish_lineage: give each DAG a ``publish_lineage`` teardown task that carries the
            Airflow run's status (and its tasks') to the catalog's pipeline
            ``onering_airflow.<dag_id>``, in the openmetadata environment; it never changes
            the run's outcome (``airflow_bridge/lineage_task.py``).
        env: set by ``onering airflow export --env NAME`` (never in ``bridge.yml``, see
            :func:`for_env`): every task tags its Dagster run ``onering/env=NAME``, so the
            assets build into that environment's namespaces.
    """

    dag_prefix: str = "onering"
    grouping: str = "group"
    dags: dict[str, str] = field(default_factory=dict)
    tasks: str = "asset"
    select: str = "*"
    exclude: str | None = None
    checks: str = "with_asset"
    schedules: dict[str, str] = field(default_factory=dict)
    mode: str = "in_process"
    python: str = "python"
    dagster_url: str = "http://127.0.0.1:3000"
    dagster_token_env: str | None = None
    retries: int = 1
    retry_delay_s: int = 60
    owner: str = "data-platform"
    publish_lineage: bool = True
    env: str | None = None

    def validate(self) -> RenderConfig:
        if self.grouping not in GROUPINGS:
            raise BridgeError(f"grouping {self.grouping!r}: use one of {', '.join(GROUPINGS)}.")
        if self.tasks not in TASKS:
            raise BridgeError(f"tasks {self.tasks!r}: use one of {', '.join(TASKS)}.")
        if (self.grouping == "selection") != bool(self.dags):
            raise BridgeError("grouping 'selection' and a non-empty `dags` go together.")
        bad = [d for d in self.dags if not d.replace("_", "").isalnum()]
        if bad:
            raise BridgeError(f"dags: {', '.join(bad)}: DAG ids are letters, digits and _ only.")
        if self.checks not in CHECK_MODES:
            raise BridgeError(f"checks {self.checks!r}: use one of {', '.join(CHECK_MODES)}.")
        if self.mode not in MODES:
            raise BridgeError(f"mode {self.mode!r}: use one of {', '.join(MODES)}.")
        if not self.dag_prefix.replace("_", "").isalnum():
            raise BridgeError(f"dag_prefix {self.dag_prefix!r}: letters, digits and _ only.")
        if not isinstance(self.publish_lineage, bool):
            raise BridgeError(f"publish_lineage {self.publish_lineage!r}: use true or false.")
        if self.retries < 0 or self.retry_delay_s < 0:
            raise BridgeError("retries and retry_delay_s must be >= 0.")
        return self


def load_config(path: Path) -> RenderConfig:
    """Read ``bridge.yml``; unknown keys are an error, not ignored."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text()) or {} if path.exists() else {}
    known = set(RenderConfig.__dataclass_fields__) - {"env"}
    if "env" in raw:
        raise BridgeError(f"{path}: `env` is chosen by `onering airflow export --env NAME`.")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BridgeError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}."
        )
    return RenderConfig(**raw).validate()


def for_env(config: RenderConfig, env: str, groups: tuple[str, ...]) -> RenderConfig:
    """``config`` for DAGs that build environment ``env`` rather than production.

    DAG ids carry the name (``<prefix>_<env>_<group>``; a ``dags`` entry ``<prefix>_<name>``
    or ``<name>`` becomes ``<prefix>_<env>_<name>``, left out if it selects nothing the
    environment holds), only ``groups`` (what an environment holds) of what ``config``
    exports are exported, and nothing runs on a clock:
    production's cron schedules are dropped, a DAG is triggered by hand (one with no
    upstream DAG in the environment waits for an Airflow asset nothing updates, so that it
    takes a partition key) or by the environment's own upstream DAGs (their Airflow assets
    carry ``?env=<env>``, so production's runs never trigger them). The environment's runs
    are not production's lineage: no ``publish_lineage`` task.

    Raises:
        BridgeError: ``mode: dagster_graphql``: a Dagster webserver launches runs on
            production's instance, where an environment's runs must not be recorded.
    """
    if config.mode == "dagster_graphql":
        raise BridgeError(
            "mode dagster_graphql launches runs on the webserver's (production's) Dagster "
            "instance: export an environment's DAGs with mode in_process or subprocess."
        )
    chosen = " or ".join(f"group:{g}" for g in groups)
    select = chosen if config.select.strip() == "*" else f"({config.select}) and ({chosen})"
    prefix = f"{config.dag_prefix}_{env}"
    dags = {
        f"{prefix}_{d.removeprefix(config.dag_prefix + '_')}": e for d, e in config.dags.items()
    }
    return replace(
        config,
        dag_prefix=prefix,
        dags=dags,
        select=select,
        schedules={},
        publish_lineage=False,
        env=env,
    ).validate()
