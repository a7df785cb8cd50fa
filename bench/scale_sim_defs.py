"""Scale simulation, the graphs it plans over: Dagster definitions built from a bridge
manifest in the shape OneRing's factory gives every table (one subsettable multi-asset per
asset, its checks as check specs, ``BackfillPolicy.single_run()`` when partitioned), and
OneRing's own medallion graph with its partitions stretched to years of days.

Nothing here runs an asset: the bodies are empty, the simulation only plans.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from bench.bridge_manifests import MANIFEST_FILE, REAL_DAGS

if TYPE_CHECKING:
    import dagster as dg

    from airflow_bridge.manifest import AssetNode, Manifest

MEDALLION = ("bronze", "silver", "gold")
DAILY_FMT = "%Y-%m-%d"
FIRST_DAY = date(2014, 1, 1)
# The backfill policies the simulation compares: OneRing's (one run per range), Dagster's
# default (one run per partition) and chunks of 30 days.
POLICIES = ("single_run", "per_partition", "multi_run_30")
# Set by the backfill worker before Dagster's workspace loads ``defs`` (in this process).
SPEC: dict[str, Any] = {}


def daily_spec(days: int, first: date = FIRST_DAY) -> dict[str, str]:
    """A bridge partition spec of ``days`` daily partitions from ``first``."""
    last = first + timedelta(days=days - 1)
    return {"start": first.isoformat(), "end": last.isoformat(), "fmt": DAILY_FMT}


def years_of_days(years: int, first: date = FIRST_DAY) -> int:
    """Days in ``years`` calendar years from ``first`` (leap days counted)."""
    return (first.replace(year=first.year + years) - first).days


def medallion_manifest(copies: int, days: int) -> Manifest:
    """OneRing's Bronze, Silver and Gold assets as exported (their deps, checks, which are
    partitioned), partitioned by ``days`` days instead of 12 months, ``copies`` times over
    (copy ``k`` > 0 suffixes every key's table with ``_c<k>``; deps stay within a copy)."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.manifest import loads

    real = loads((REAL_DAGS / MANIFEST_FILE).read_text(), where=MANIFEST_FILE)
    medallion = [a for a in real.assets if a.group in MEDALLION]
    spec = daily_spec(days)
    assets: list[AssetNode] = []
    for copy in range(copies):

        def name(key: str, copy: int = copy) -> str:
            return key if copy == 0 else f"{key}_c{copy:03d}"

        for a in medallion:
            assets.append(
                replace(
                    a,
                    key=name(a.key),
                    deps=tuple(name(d) for d in a.deps),
                    partitions=dict(spec) if a.partitions else None,
                    uri=f"onering://{name(a.key)}",
                )
            )
    # Bronze runs once a day, as Bronze runs once a month in the project's bridge.yml.
    render = {**real.render, "schedules": {"onering_bronze": "@daily"}}
    config = RenderConfig(**render).validate()
    return replace(real, assets=tuple(assets), render=asdict(config))


def partitions_def(spec: dict[str, str] | None) -> dg.PartitionsDefinition | None:
    """The Dagster time-window definition of a bridge partition spec (monthly or daily)."""
    import dagster as dg

    if spec is None:
        return None
    if spec["fmt"] == DAILY_FMT:
        end = date.fromisoformat(spec["end"]) + timedelta(days=1)
        return dg.DailyPartitionsDefinition(start_date=spec["start"], end_date=end.isoformat())
    year, month = (int(x) for x in spec["end"].split("-"))
    after = f"{year + month // 12}-{month % 12 + 1:02d}"
    return dg.MonthlyPartitionsDefinition(start_date=spec["start"], end_date=after, fmt="%Y-%m")


def backfill_policy(policy: str) -> dg.BackfillPolicy | None:
    import dagster as dg

    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r}: one of {', '.join(POLICIES)}")
    if policy == "single_run":
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(30) if policy == "multi_run_30" else None


def definitions(
    manifest: Manifest, *, checks: bool = True, policy: str = "single_run"
) -> dg.Definitions:
    """Dagster definitions of the manifest's assets, each as OneRing's factory builds a table
    (``onering_assets/factory.py``: a subsettable multi-asset, check specs, the policy on
    partitioned assets). One partitions definition per distinct spec, shared."""
    import dagster as dg

    shared: dict[tuple[tuple[str, str], ...], dg.PartitionsDefinition | None] = {}
    chosen = backfill_policy(policy)
    assets = []
    for node in manifest.assets:
        spec_key = tuple(sorted((node.partitions or {}).items()))
        if spec_key not in shared:
            shared[spec_key] = partitions_def(node.partitions)
        parts = shared[spec_key]
        key = dg.AssetKey(node.key.split("/"))
        spec = dg.AssetSpec(
            key=key,
            group_name=node.group,
            deps=[dg.AssetKey(d.split("/")) for d in node.deps],
            partitions_def=parts,
            owners=list(node.owners),
            tags=dict(node.tags),
            description=node.description,
        )
        check_specs = (
            [dg.AssetCheckSpec(c.name, asset=key, blocking=c.blocking) for c in node.checks]
            if checks
            else []
        )

        def body(context):  # never run: the simulation only plans
            return None

        assets.append(
            dg.multi_asset(
                name=node.key.replace("/", "__"),
                specs=[spec],
                check_specs=check_specs,
                can_subset=True,
                backfill_policy=chosen if parts is not None else None,
            )(body)
        )
    return dg.Definitions(assets=assets)


def _lazy() -> dg.Definitions:
    """What Dagster's workspace loads: the medallion graph of :data:`SPEC`."""
    manifest = medallion_manifest(SPEC["copies"], SPEC["days"])
    return definitions(manifest, policy=SPEC["policy"])


def __getattr__(name: str) -> Any:
    # ``defs`` is built on first access, after the worker has set SPEC.
    if name == "defs":
        import dagster as dg

        return dg.definitions(_lazy)
    raise AttributeError(name)
