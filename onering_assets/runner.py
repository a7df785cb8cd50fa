"""Run materializations and checks the way the CLI, `make demo` and the bench do."""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dagster as dg

from onering_assets.errors import ConfigError, NothingSelectedError
from onering_assets.instances import env_home as env_home
from onering_assets.instances import envs_root as envs_root
from onering_assets.instances import instance_for as instance_for
from onering_assets.instances import state_of
from onering_assets.instances import write_instance_config as write_instance_config
from onering_assets.namespaces import ENV_GROUPS, ENV_TAG, check_name
from onering_assets.partitions import MONTHLY, month_key
from onering_assets.progress import console
from onering_assets.settings import PLATFORM_DIR, Settings
from onering_assets.summary import RunSummary, record_cancel, summarize

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


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


def resolve_selection(
    defs: dg.Definitions, selection: str | None, within: set[dg.AssetKey] | None = None
) -> set[dg.AssetKey]:
    """The materializable assets Dagster's selection string picks (all without one).

    Dagster itself parses and resolves the string, so every form of its syntax works.

    Raises:
        ConfigError: the string is not a valid selection.
        NothingSelectedError: it picks no asset (of ``within``, when given).
    """
    graph = defs.resolve_asset_graph()
    materializable = set(graph.materializable_asset_keys)
    if not selection:
        keys = materializable
    else:
        try:
            with warnings.catch_warnings():
                # `group:` and friends are beta in Dagster 1.13; the warning is noise here.
                warnings.simplefilter("ignore", dg.BetaWarning)
                keys = set(dg.AssetSelection.from_string(selection).resolve(graph)) & materializable
        except Exception as err:
            raise ConfigError(
                f"Cannot parse selection {selection!r}: {err}. "
                "Examples: 'key:\"gold/route_performance\"',"
                " 'group:silver', '+key:\"gold/carrier_monthly_performance\"' (with upstream)."
            ) from err
    if within is not None:
        keys &= within
    if not keys:
        raise NothingSelectedError(
            f"Selection {selection!r} matches no asset"
            + (" it may run here" if within is not None else "")
            + "; see `onering assets list`."
        )
    return keys


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
    run_id: str | None = None,
) -> RunSummary:
    """One in-process run of the given assets (and their checks), over a partition range."""
    asset_keys = set(assets)
    targeted = asset_keys | {c.asset_key for c in checks or ()}
    if ENV_TAG in (tags or {}):
        _check_env_run(defs, instance, targeted, (tags or {})[ENV_TAG])
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=asset_keys,
        asset_check_selection=set(checks) if checks is not None else None,
    )
    run_tags = dict(tags or {})
    # Checks alone run over the months given too (their asset's partitions).
    graph = defs.resolve_asset_graph()
    if first and last and any(graph.get(k).partitions_def is not None for k in targeted):
        run_tags.update({RANGE_START: first, RANGE_END: last})
    quiet = {"console": {"config": {"log_level": "ERROR"}}}
    run_config = {"loggers": {"onering_progress": {}} if progress else quiet}
    started = time.perf_counter()
    # Dagster leaves SIGTERM mapped to its interrupt handler after the run; give the
    # caller (the CLI, an Airflow task) its own handler back.
    term = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    try:
        with _recording_target(instance, job), console():
            result = job.execute_in_process(
                instance=instance,
                tags=run_tags,
                run_config=run_config,
                raise_on_error=False,
                run_id=run_id,
            )
    finally:
        if term is not None:
            signal.signal(signal.SIGTERM, term)
    summary = summarize(result, time.perf_counter() - started)
    if record_cancel(instance, result):
        summary.status = "CANCELED"
    state = state_of(instance)
    if state is not None:  # pending for the catalog; published now if one is configured
        from onering_assets.lineage.publish import after_run

        after_run(defs, instance, summary.run_id, state, publish=summary.status != "CANCELED")
    return summary


def _check_env_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: set[dg.AssetKey], env: str
) -> None:
    """Refuse an environment's run that would write outside it, before anything runs."""
    check_name(env)
    if state_of(instance) is not None:
        raise ConfigError(
            f"A run of environment {env!r} goes to its own Dagster instance "
            "(runner.instance_for(settings, env)), not production's."
        )
    graph = defs.resolve_asset_graph()
    outside = sorted(k.to_user_string() for k in keys if graph.get(k).group_name not in ENV_GROUPS)
    if outside:
        raise ConfigError(
            f"Environment {env!r} holds Silver and Gold only; {', '.join(outside)} "
            "would be built in production: select Silver and Gold tables."
        )


@contextmanager
def _recording_target(instance: dg.DagsterInstance, job: dg.JobDefinition) -> Iterator[None]:
    """Store the run with what it targets: the Runs page's Target column, and re-execution.

    ``execute_in_process`` of a subset job stores an empty asset selection and no check
    selection (Dagster 1.13), so the UI showed CLI runs with no target. The run is stored
    as the UI would launch it: the job's assets, and its checks (``None``: all of theirs).
    """
    storage = instance.run_storage
    add_run = storage.add_run
    assets = frozenset(job.asset_selection or ())
    checks = job.asset_check_selection
    check_selection = None if checks is None else frozenset(checks)

    def add_with_target(dagster_run: dg.DagsterRun) -> dg.DagsterRun:
        if dagster_run.job_name == job.name:
            dagster_run = dagster_run._replace(
                asset_selection=assets, asset_check_selection=check_selection
            )
        return add_run(dagster_run)

    storage.add_run = add_with_target  # this instance's storage only, for this one run
    try:
        yield
    finally:
        del storage.add_run


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def check_keys(defs: dg.Definitions, keys: set[dg.AssetKey]) -> set[dg.AssetCheckKey]:
    graph = defs.resolve_asset_graph()
    return {ck for ck in graph.asset_check_keys if ck.asset_key in keys}


def blocking_by_check(defs: dg.Definitions) -> dict[tuple[str, str], bool]:
    graph = defs.resolve_asset_graph()
    return {
        (ck.asset_key.to_user_string(), ck.name): graph.get_check_spec(ck).blocking
        for ck in graph.asset_check_keys
    }


# settings -> (the platform files' stamp when built, the definitions built from them)
_PREPARED: dict[Settings, tuple[tuple, dg.Definitions]] = {}


def _build(settings: Settings) -> dg.Definitions:
    from onering_assets.definitions import build_definitions

    return build_definitions(settings)


def platform_stamp() -> tuple:
    """Every declaration file under ``platform/`` by path and content (exported DAGs aside).

    About 70 files, 0.6 MB: about 9 ms, cheap beside a run, so compared before every one.
    """
    found = []
    for path in PLATFORM_DIR.rglob("*"):
        relative = path.relative_to(PLATFORM_DIR).as_posix()
        if "__pycache__" in path.parts or relative.startswith("orchestration/airflow/dags/"):
            continue
        if path.is_file():
            found.append((str(path), hashlib.blake2b(path.read_bytes()).hexdigest()))
    return tuple(sorted(found))


def prepare_worker() -> None:
    """Load now what every in-process run would load: for processes forked from this one.

    The local Airflow's scheduler calls it before it starts, so each task process (forked
    from it by the LocalExecutor) begins with Dagster, the definitions for its settings and
    the GX library already in memory. A task whose platform files changed since (a SQL or
    YAML edit, a new changeset) builds the definitions again (:func:`prepared`): it never
    runs an old declaration.
    """
    settings = Settings.from_env()
    stamp = platform_stamp()
    _PREPARED[settings] = (stamp, _build(settings))
    _PREPARED[settings][1].resolve_asset_graph()
    import great_expectations  # noqa: F401  (imported by each GX check otherwise: ~2.7 s)


# What reads platform/ once per process (functools.cache): forgotten when the files change.
_DECLARATION_CACHES = (
    ("onering_assets.catalog", "load_catalog"),
    ("onering_assets.change.sources", "_changesets"),
    ("onering_assets.features.views", "load_views"),
    ("onering_assets.ml.inputs", "feature_refs"),
    ("onering_assets.ml.training", "load_job"),
)


def prepared(settings: Settings) -> dg.Definitions:
    """The definitions :func:`prepare_worker` built, unless the platform files changed since."""
    stamp, defs = _PREPARED.get(settings, ((), None))
    if defs is not None and stamp == platform_stamp():
        return defs
    if defs is not None:  # the preloaded declarations are old: read them again
        for module, name in _DECLARATION_CACHES:
            if module in sys.modules:
                getattr(sys.modules[module], name).cache_clear()
    return _build(settings)


def run_keys(
    keys: list[str],
    first: str | None,
    last: str | None,
    *,
    tags: dict[str, str],
    what: str = "assets",
    select: str | None = None,
    run_id: str | None = None,
) -> RunSummary:
    """Materialize assets named ``layer/table`` (the Airflow bridge's in-process mode).

    ``what``: ``assets`` (with their checks), ``assets_only``, or ``checks`` (alone).
    ``select``: a Dagster selection narrowing ``keys`` (resolved by Dagster).

    Raises:
        ConfigError: an unknown key or an invalid selection.
        NothingSelectedError: ``select`` picks none of ``keys``.
    """
    settings = Settings.from_env()
    defs = prepared(settings)
    asset_keys = {dg.AssetKey(k.split("/")) for k in keys}
    unknown = asset_keys - set(defs.resolve_asset_graph().materializable_asset_keys)
    if unknown:
        raise ConfigError(f"Unknown assets {sorted(k.to_user_string() for k in unknown)}.")
    if select:
        asset_keys = resolve_selection(defs, select, within=asset_keys)
    instance = instance_for(settings, tags.get(ENV_TAG, ""))
    if what == "checks":
        summary = execute(
            defs,
            instance,
            assets=set(),
            checks=check_keys(defs, asset_keys),
            tags=tags,
            progress=False,
            run_id=run_id,
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
            run_id=run_id,
        )
    summary.blocking = blocking_by_check(defs)
    return summary
