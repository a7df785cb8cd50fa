"""Feature assets: a view's offline rows (``features/<view>_source``) and the view itself.

``features/<view>_source`` computes the view's rows from Silver in ClickHouse (the SQL
under ``platform/featurestore/sql``), audits them (keys, null rates, ranges, timestamps),
then writes them as Parquet to the lake (``features/<view>/data.parquet``): rows failing a
check are never written. ``features/<view>`` audits the published rows again (null rates,
ranges, freshness), applies the view to Feast's registry, materializes the newest row per
entity to the online store, and checks that the online store agrees with the offline rows.
Feast is imported inside the steps only.
"""

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from onering_assets.change.state import record_deployment
from onering_assets.checks.outcome import Outcome, failures_message, not_published
from onering_assets.checks.specs import CheckDecl, blocking_failures, emit, to_specs
from onering_assets.features import checks, steps
from onering_assets.features.clocks import inputs_known_at
from onering_assets.features.specs import source_key, source_spec, view_spec
from onering_assets.features.views import View, load_views
from onering_assets.resources.clickhouse import ClickHouseResource
from onering_assets.resources.feast import FeastResource
from onering_assets.resources.lake import LakeResource


@dataclass(frozen=True)
class Audit:
    """Outcomes to emit, and what a blocking failure among them leaves behind."""

    outcomes: list[Outcome]
    then: str


Body = Callable[[dg.AssetExecutionContext, bool], Iterator[Audit | dg.MaterializeResult]]


def build_feature_asset(
    spec: dg.AssetSpec, decls: list[CheckDecl], resources: set[str], body: Body
) -> dg.AssetsDefinition:
    """Like ``factory.build_table_asset``; each audit says what its failure leaves behind."""
    key = spec.key

    @dg.multi_asset(
        name="__".join(key.path),
        specs=[spec],
        check_specs=to_specs(key, decls),
        can_subset=True,
        required_resource_keys=resources,
        op_tags={"onering/layer": key.path[0]},
    )
    def _asset(context: AssetExecutionContext) -> Iterator[Any]:
        materialize = key in context.selected_asset_keys
        for item in body(context, materialize):
            if isinstance(item, dg.MaterializeResult):
                yield item
                continue
            yield from emit(context, key, decls, item.outcomes)
            failures = blocking_failures(decls, item.outcomes)
            if materialize and failures:
                raise dg.Failure(
                    description=(
                        f"{key.to_user_string()}: {len(failures)} blocking check(s) failed; "
                        f"{item.then}\n{failures_message(failures)}"
                    ),
                    metadata={"failed_checks": [o.name for o in failures]},
                    allow_retries=False,
                )

    return _asset


def _source_outcomes(rows: Any, view: View, known: Any) -> list[Outcome]:
    return [
        checks.not_empty(rows, view),
        checks.key_unique(rows, view),
        checks.null_rates(rows, view),
        checks.value_ranges(rows, view),
        checks.not_after_inputs(rows, known),
    ]


def build_source_asset(view: View) -> dg.AssetsDefinition:
    """``features/<view>_source``: compute from Silver, audit, write to the lake."""
    decls = checks.source_checks(view)

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator[Any]:
        ch: ClickHouseResource = context.resources.clickhouse
        lake: LakeResource = context.resources.lake
        if not materialize and not lake.exists(steps.LAYER, view.name):
            # Checks alone open no store that is not there yet (opening chDB creates it).
            yield Audit(not_published([d.name for d in decls], f"features/{view.name}"), "")
            return
        client = ch.get_client()
        known = inputs_known_at(client, view.inputs)
        if not materialize:
            yield Audit(_source_outcomes(steps.read(lake, view), view, known), "")
            return
        started = time.perf_counter()
        rows = steps.compute(client, view)
        yield Audit(
            _source_outcomes(rows, view, known),
            "nothing was written; the lake keeps the previous rows.",
        )
        path = steps.write(lake, view, rows)
        record_deployment(context, client, view, None)
        yield dg.MaterializeResult(
            metadata={
                "rows": rows.num_rows,
                "dagster/row_count": rows.num_rows,
                "path": path,
                "inputs_known_at": known.isoformat(),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    return build_feature_asset(source_spec(view), decls, {"clickhouse", "lake"}, body)


def _consistency(store: Any, view: View, rows: Any) -> Outcome:
    from onering_assets.features.retrieval import online_features

    newest = checks.newest_per_entity(rows, view)
    sample = [newest[i] for i in checks.sample_entities(newest)]
    keys = [{k: row[k] for k in view.join_keys} for row in sample]
    try:
        online = online_features(store, keys, view.refs)
    except Exception as err:  # a view never applied, a store that cannot be reached
        return Outcome.failed(checks.ONLINE_CONSISTENCY, f"cannot read the online store: {err}", [])
    return checks.online_consistency(view, sample, online)


def _materialize(context: dg.AssetExecutionContext, store: Any, view: View, rows: Any) -> tuple:
    """Apply every view, then materialize this one (Feast's progress output to the log)."""
    lake: LakeResource = context.resources.lake
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        steps.apply(store, load_views(), lake)
        window = steps.materialize(store, view, rows)
    context.log.debug(printed.getvalue())
    return window


def build_view_asset(view: View) -> dg.AssetsDefinition:
    """``features/<view>``: audit the offline rows, apply, materialize, check online."""
    decls = checks.view_checks(view)

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator[Any]:
        ch: ClickHouseResource = context.resources.clickhouse
        lake: LakeResource = context.resources.lake
        feast: FeastResource = context.resources.feast
        if not lake.exists(steps.LAYER, view.name):
            if materialize:
                raise dg.Failure(
                    f"features/{view.name}: its offline rows are missing; materialize "
                    f"{source_key(view).to_user_string()} first."
                )
            yield Audit(not_published([d.name for d in decls], f"features/{view.name}"), "")
            return
        rows = steps.read(lake, view)
        known = inputs_known_at(ch.get_client(), view.inputs)
        audit = [
            checks.null_rates(rows, view),
            checks.value_ranges(rows, view),
            checks.freshness(rows, view, known),
        ]
        if not materialize:
            yield Audit([*audit, _consistency(feast.store(), view, rows)], "")
            return
        started = time.perf_counter()
        yield Audit(audit, "nothing was applied or materialized; the online store is unchanged.")
        store = feast.store()
        start, end = _materialize(context, store, view, rows)
        yield Audit(
            [_consistency(store, view, rows)],
            "the online store was written and disagrees with the offline rows: "
            f"materialize features/{view.name} again.",
        )
        yield dg.MaterializeResult(
            metadata={
                "rows": rows.num_rows,
                "entities": len(checks.newest_per_entity(rows, view)),
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
                "online_store": str(getattr(store.config.online_store, "type", "")),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    return build_feature_asset(view_spec(view), decls, {"clickhouse", "lake", "feast"}, body)
