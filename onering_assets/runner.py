"""Run materializations and checks the way the CLI, `make demo` and the bench do."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from onering_assets.errors import ConfigError
from onering_assets.partitions import MONTHLY, month_key
from onering_assets.resources.locks import store_lock
from onering_assets.settings import Settings

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

INSTANCE_CONFIG = {
    "telemetry": {"enabled": False},
    # Runs launched from the UI (or the bridge's dagster_graphql mode) queue and run one at
    # a time: chDB has one owner per directory. The daemon looks at the queue every second
    # (Dagster's default, 5 s, was most of a launched task's overhead: bench/airflow_tasks.py).
    "run_coordinator": {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"max_concurrent_runs": 1, "dequeue_interval_seconds": 1},
    },
}


def write_instance_config(home: Path) -> None:
    """OneRing's ``dagster.yaml`` in ``home``, unless one is there already."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump(INSTANCE_CONFIG, sort_keys=False))


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance under the state folder (shared with `onering dev`)."""
    home = settings.dagster_home
    write_instance_config(home)
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


def partition_range(partition: str | None, start: str | None, end: str | None) -> tuple[str, str]:
    """Resolve --partition / --from / --to (default: every partition) to a validated range."""
    keys = MONTHLY.get_partition_keys()
    if partition and (start or end):
        raise ConfigError("Use --partition or --from/--to, not both.")
    if partition:
        return month_key(partition), partition
    first, last = month_key(start or keys[0]), month_key(end or keys[-1])
    if first > last:
        raise ConfigError(f"--from {first} is after --to {last}.")
    return first, last


def resolve_selection(defs: dg.Definitions, selection: str | None) -> set[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    if not selection:
        return set(graph.materializable_asset_keys)
    try:
        keys = dg.AssetSelection.from_string(selection).resolve(graph)
    except Exception as err:
        raise ConfigError(
            f"Cannot parse selection {selection!r}: {err}. "
            "Examples: 'key:\"gold/route_performance\"',"
            " 'group:silver', '+key:\"gold/carrier_monthly_performance\"' (with upstream)."
        ) from err
    if not keys:
        raise ConfigError(f"Selection {selection!r} matches no asset; see `onering assets list`.")
    return set(keys)


def missing_upstream(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    keys: set[dg.AssetKey],
    first: str,
    last: str,
) -> set[dg.AssetKey]:
    """Upstream assets never materialized for the range: they must run first."""
    graph = defs.resolve_asset_graph()
    wanted = [k for k in MONTHLY.get_partition_keys() if first <= k <= last]
    missing: set[dg.AssetKey] = set()
    frontier = set(keys)
    while frontier:
        key = frontier.pop()
        for parent in graph.get(key).parent_keys:
            if parent in keys or parent in missing:
                continue
            if graph.get(parent).partitions_def is not None:
                done = instance.get_materialized_partitions(parent)
                absent = any(p not in done for p in wanted)
            else:
                absent = instance.get_latest_materialization_event(parent) is None
            if absent:
                missing.add(parent)
                frontier.add(parent)
    return missing


@dataclass
class RunSummary:
    success: bool
    seconds: float
    run_id: str
    rows: dict[str, Any] = field(default_factory=dict)
    rejected: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    blocking: dict[tuple[str, str], bool] = field(default_factory=dict)

    @property
    def checks_passed(self) -> int:
        return sum(1 for c in self.checks if c[2])

    def to_dict(self, blocking: dict[tuple[str, str], bool] | None = None) -> dict[str, Any]:
        """JSON-safe summary (what `onering materialize --json` prints and Airflow keeps)."""
        blocking = blocking or self.blocking
        return {
            "success": self.success,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "rejected": self.rejected,
            "checks": [
                {
                    "asset": a,
                    "check": c,
                    "passed": p,
                    "description": d,
                    "blocking": blocking.get((a, c), True),
                }
                for a, c, p, d in self.checks
            ],
            "failures": self.failures,
        }


def summarize(result: dg.ExecuteInProcessResult, seconds: float) -> RunSummary:
    summary = RunSummary(result.success, seconds, result.run_id)
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.materialization
            rows = mat.metadata.get("rows") or mat.metadata.get("dagster/row_count")
            rejected = mat.metadata.get("rejected_rows_total")
            summary.rows[mat.asset_key.to_user_string()] = rows.value if rows else None
            if rejected is not None:
                summary.rejected[mat.asset_key.to_user_string()] = rejected.value
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.asset_check_evaluation_data
            summary.checks.append(
                (
                    check.asset_key.to_user_string(),
                    check.check_name,
                    check.passed,
                    check.description or "",
                )
            )
        elif event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            message = error.message.strip() if error else "failed"
            summary.failures.append(f"{event.step_key}: {message}")
    return summary


def execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    assets: Iterable[dg.AssetKey] = (),
    checks: Iterable[dg.AssetCheckKey] | None = None,
    first: str | None = None,
    last: str | None = None,
    tags: dict[str, str] | None = None,
    progress: bool = True,
) -> RunSummary:
    """One in-process run of the given assets (and their checks), over a partition range."""
    asset_keys = set(assets)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=asset_keys,
        asset_check_selection=set(checks) if checks is not None else None,
    )
    run_tags = dict(tags or {})
    if (
        first
        and last
        and any(defs.resolve_asset_graph().get(k).partitions_def is not None for k in asset_keys)
    ):
        run_tags.update({RANGE_START: first, RANGE_END: last})
    quiet = {"console": {"config": {"log_level": "ERROR"}}}
    run_config = {"loggers": {"onering_progress": {}} if progress else quiet}
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance, tags=run_tags, run_config=run_config, raise_on_error=False
    )
    return summarize(result, time.perf_counter() - started)


def check_keys(defs: dg.Definitions, keys: set[dg.AssetKey]) -> set[dg.AssetCheckKey]:
    graph = defs.resolve_asset_graph()
    return {ck for ck in graph.asset_check_keys if ck.asset_key in keys}


def blocking_by_check(defs: dg.Definitions) -> dict[tuple[str, str], bool]:
    graph = defs.resolve_asset_graph()
    return {
        (ck.asset_key.to_user_string(), ck.name): graph.get_check_spec(ck).blocking
        for ck in graph.asset_check_keys
    }


_PREPARED: dict[Settings, dg.Definitions] = {}


def _build(settings: Settings) -> dg.Definitions:
    from onering_assets.definitions import build_definitions

    return build_definitions(settings)


def prepare_worker() -> None:
    """Load now what every in-process run would load: for processes forked from this one.

    The local Airflow's scheduler calls it before it starts, so each task process (forked
    from it by the LocalExecutor) begins with Dagster, the definitions for its settings and
    the GX library already in memory. Like a Dagster code server, it serves the code and
    platform files as they were at start: restart Airflow after changing them (``onering
    airflow up`` re-exports the DAGs anyway).
    """
    settings = Settings.from_env()
    _PREPARED[settings] = _build(settings)
    _PREPARED[settings].resolve_asset_graph()
    import great_expectations  # noqa: F401  (imported by each GX check otherwise: ~2.7 s)


def run_keys(
    keys: list[str],
    first: str | None,
    last: str | None,
    *,
    tags: dict[str, str],
    what: str = "assets",
) -> RunSummary:
    """Materialize assets named ``layer/table`` (the Airflow bridge's in-process mode).

    ``what``: ``assets`` (with their checks), ``assets_only``, or ``checks`` (alone).
    """
    settings = Settings.from_env()
    defs = _PREPARED.get(settings) or _build(settings)
    asset_keys = {dg.AssetKey(k.split("/")) for k in keys}
    unknown = asset_keys - set(defs.resolve_asset_graph().materializable_asset_keys)
    if unknown:
        raise ConfigError(f"Unknown assets {sorted(k.to_user_string() for k in unknown)}.")
    instance = instance_for(settings)
    if what == "checks":
        summary = execute(
            defs,
            instance,
            assets=set(),
            checks=check_keys(defs, asset_keys),
            tags=tags,
            progress=False,
        )
    else:
        summary = execute(
            defs,
            instance,
            assets=asset_keys,
            checks=None if what == "assets" else set(),
            first=first,
            last=last,
            tags=tags,
            progress=False,
        )
    summary.blocking = blocking_by_check(defs)
    return summary
