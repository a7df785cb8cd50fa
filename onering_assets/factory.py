"""The one shape every table asset takes: a subsettable multi-asset with its checks.

Selecting the asset stages, audits and publishes (checks run on staging and gate
publication); selecting only its checks audits what is published.
"""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from onering_assets.catalog import BronzeTable, SqlTable
from onering_assets.checks.outcome import Outcome, failures_message
from onering_assets.checks.specs import CheckDecl, blocking_failures, emit, to_specs
from onering_assets.metadata import KINDS, spec_metadata, spec_tags
from onering_assets.partitions import MONTHLY
from onering_assets.resources.locks import waited, waited_since

Body = Callable[[dg.AssetExecutionContext, bool], Iterator[list[Outcome] | dg.MaterializeResult]]


def freshness_policy(table: BronzeTable | SqlTable) -> dg.FreshnessPolicy | None:
    hours = getattr(table, "freshness_hours", None)
    if hours is None:
        return None
    return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=float(hours)))


def table_spec(table: BronzeTable | SqlTable, deps: list[dg.AssetDep]) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=dg.AssetKey([table.layer, table.name]),
        description=table.description,
        group_name=table.layer,
        owners=list(table.owners),
        tags=spec_tags(table.layer),
        kinds=KINDS[table.layer],
        metadata=spec_metadata(table),
        deps=deps,
        partitions_def=MONTHLY if table.partitioned else None,
        freshness_policy=freshness_policy(table),
    )


def materialize_result(
    rows_by_partition: dict[str, int], partitioned: bool, **metadata: Any
) -> dg.MaterializeResult:
    """Row counts that are true for every partition the result is recorded against.

    A ranged run records one materialization per month with the same metadata, so
    ``dagster/row_count`` is set only when the run wrote one month (or a whole table);
    ``rows`` is what the run wrote and ``rows_by_partition`` the split.
    """
    rows = sum(rows_by_partition.values())
    meta: dict[str, Any] = {"rows": rows, **metadata}
    if partitioned:
        meta["rows_by_partition"] = dict(sorted(rows_by_partition.items()))
    if not partitioned or len(rows_by_partition) == 1:
        meta["dagster/row_count"] = rows
    return dg.MaterializeResult(metadata=meta)


LOCK_WAITS = "lock_wait_seconds"


def with_lock_waits(result: dg.MaterializeResult, waits: dict[str, float]) -> dg.MaterializeResult:
    """The result with ``lock_wait_seconds``: how long the step waited for locks, by kind."""
    if not waits:
        return result
    metadata = {**(result.metadata or {}), LOCK_WAITS: waits}
    return dg.MaterializeResult(
        asset_key=result.asset_key,
        metadata=metadata,
        check_results=result.check_results,
        data_version=result.data_version,
        tags=result.tags,
    )


def build_table_asset(
    spec: dg.AssetSpec,
    decls: list[CheckDecl],
    resources: set[str],
    body: Body,
) -> dg.AssetsDefinition:
    """Wrap ``body`` (which yields outcome lists, then a MaterializeResult) in a multi-asset."""
    key = spec.key
    partitioned = spec.partitions_def is not None

    @dg.multi_asset(
        name="__".join(key.path),
        specs=[spec],
        check_specs=to_specs(key, decls),
        can_subset=True,
        required_resource_keys=resources,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        op_tags={"onering/layer": key.path[0]},
    )
    def _asset(context: AssetExecutionContext) -> Iterator[Any]:
        materialize = key in context.selected_asset_keys
        before = waited()
        for item in body(context, materialize):
            if isinstance(item, dg.MaterializeResult):
                yield with_lock_waits(item, waited_since(before))
                continue
            yield from emit(context, key, decls, item)
            failures = blocking_failures(decls, item)
            if materialize and failures:
                raise dg.Failure(
                    description=(
                        f"{key.to_user_string()}: {len(failures)} blocking check(s) failed; "
                        f"nothing was published, the previous version stays.\n"
                        f"{failures_message(failures)}"
                    ),
                    metadata={"failed_checks": [o.name for o in failures]},
                    allow_retries=False,
                )

    return _asset
