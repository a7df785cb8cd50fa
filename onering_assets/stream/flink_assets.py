"""``stream/departures_hourly`` and ``stream/delay_streaks``: one PyFlink job, via Dagster Pipes.

The step exports Silver's departed flights to a CSV file, launches the Flink job
(``envs/flink/onering_flink/flights_job.py``) with the Flink environment's Python through
``PipesSubprocessClient`` (the job reports its Flink job id, rows and seconds back over
Pipes), reads the job's CSV results, and lands each as Parquet in the lake
(``stream/<name>/data.parquet``) only when it equals the same answer computed without Flink
from the same CSV (check ``matches_reference``, blocking). A failed check publishes
nothing and the previous files stay.
"""

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from dagster import AssetExecutionContext

from onering_assets.checks.outcome import Outcome, not_published
from onering_assets.checks.specs import CheckDecl, emit, to_specs
from onering_assets.pipes import Produced, land_checked, run_module
from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.stream import flink_io
from onering_assets.stream.flink_resource import FLINK_ENV, FlinkResource

LAYER = "stream"
NAMES = ("departures_hourly", "delay_streaks")
MATCHES = "matches_reference"
DESCRIPTIONS = {
    "departures_hourly": (
        "Departures per origin airport and local hour (count, delayed > 15 min, mean delay): "
        "a one-hour event-time TUMBLE window in Flink SQL over Silver's departed flights."
    ),
    "delay_streaks": (
        "Three departures in a row more than 15 minutes late on one route (non-overlapping "
        "runs, by local departure time): Flink SQL MATCH_RECOGNIZE over Silver's flights."
    ),
}
REFERENCES = {
    "departures_hourly": "an Arrow group-by of the same departures",
    "delay_streaks": "a plain scan of each route's departures",
}
DECLS = [
    CheckDecl(
        MATCHES,
        True,
        "Flink's result equals the same answer computed without Flink from the same input, "
        "row for row (no departure lost to the watermark, no match missed).",
    )
]
SILVER_FLIGHTS = dg.AssetKey(["silver", "flights"])


def key(name: str) -> dg.AssetKey:
    return dg.AssetKey([LAYER, name])


def spec(name: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=key(name),
        description=DESCRIPTIONS[name],
        deps=[SILVER_FLIGHTS],
        group_name="stream",
        owners=["team:flight-analytics"],
        tags={"layer": "stream", "store": "lake"},
        kinds={"flink", "parquet"},
        metadata={
            "uri": f"{LAYER}/{name}/",
            "onering/engine": "flink",
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(f.name, str(f.type), description=flink_io.COLUMNS[f.name])
                    for f in flink_io.SCHEMAS[name]
                ]
            ),
        },
    )


def compare(name: str, got: pa.Table, departures: pa.Table) -> Outcome:
    """``matches_reference``: Flink's rows against the answer computed without Flink."""
    want = flink_io.reference(name, departures)
    missing, extra, changed, sample = flink_io.differences(name, got, want)
    meta = {
        "rows": got.num_rows,
        "reference_rows": want.num_rows,
        "departures": departures.num_rows,
    }
    if missing or extra or changed:
        return Outcome.failed(
            MATCHES,
            f"{name} differs from {REFERENCES[name]}: {missing} row(s) missing, {extra} extra, "
            f"{changed} with other values",
            sample,
            meta,
        )
    summary = f"{got.num_rows:,} rows equal {REFERENCES[name]} ({departures.num_rows:,} departures)"
    return Outcome(MATCHES, True, summary, metadata=meta)


def run_job(
    context: dg.AssetExecutionContext,
    flink: FlinkResource,
    csv_path: Path,
    out: Path,
    names: list[str],
) -> dict[dg.AssetKey, dict[str, Any]]:
    """Launch the job through Pipes; the metadata it reported, per asset."""
    return run_module(
        context,
        python=flink.interpreter(),
        module="onering_flink.flights_job",
        cwd=FLINK_ENV,
        extras={
            "departure_csv": str(csv_path),
            "out_dir": str(out),
            "jobmanager": flink.jobmanager,
            "results": names,
        },
        env=flink.child_env(),
    )


def audit_published(
    lake: LakeResource, ch: ClickHouseResource, names: list[str]
) -> list[tuple[str, Outcome]]:
    """Checks alone: the published files against Silver's departures now."""
    published = [n for n in names if lake.exists(LAYER, n)]
    outcomes = [
        (n, o)
        for n in names
        if n not in published
        for o in not_published([MATCHES], f"{LAYER}/{n}")
    ]
    if not published:
        return outcomes
    with tempfile.TemporaryDirectory(prefix="onering-flink-") as tmp:
        csv_path = Path(tmp) / "departures.csv"
        with ch.session() as client:
            flink_io.export_departures(client, csv_path)
        departures = flink_io.read_departures(csv_path)
    for name in published:
        got = flink_io.sort(name, lake.read(LAYER, name).cast(flink_io.SCHEMAS[name]))
        outcomes.append((name, compare(name, got, departures)))
    return outcomes


def build_flink_assets() -> dg.AssetsDefinition:
    check_specs = [s for n in NAMES for s in to_specs(key(n), DECLS)]

    @dg.multi_asset(
        name="stream__flink_flights",
        specs=[spec(n) for n in NAMES],
        check_specs=check_specs,
        can_subset=True,
        required_resource_keys={"lake", "clickhouse", "flink"},
        op_tags={"onering/layer": LAYER},
    )
    def _assets(context: AssetExecutionContext) -> Iterator[Any]:
        lake: LakeResource = context.resources.lake
        ch: ClickHouseResource = context.resources.clickhouse
        selected = [n for n in NAMES if key(n) in context.selected_asset_keys]
        checked = [
            n
            for n in NAMES
            if any(c.asset_key == key(n) for c in context.selected_asset_check_keys)
        ]
        if not selected:  # checks alone
            for name, outcome in audit_published(lake, ch, checked):
                yield from emit(context, key(name), DECLS, [outcome])
            return
        yield from materialize(context, lake, ch, context.resources.flink, selected)

    return _assets


def materialize(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    ch: ClickHouseResource,
    flink: FlinkResource,
    selected: list[str],
) -> Iterator[Any]:
    with tempfile.TemporaryDirectory(prefix="onering-flink-", dir=flink.work_dir or None) as tmp:
        csv_path, out = Path(tmp) / "departures.csv", Path(tmp) / "out"
        with ch.session() as client:
            handed = flink_io.export_departures(client, csv_path)
        context.log.info(f"handing {handed:,} departures to Flink")
        reported = run_job(context, flink, csv_path, out, selected)
        departures = flink_io.read_departures(csv_path)
        results = {
            name: flink_io.read_result(name, sorted(str(p) for p in (out / name).rglob("part-*")))
            for name in selected
        }
    produced = [
        Produced(
            key(name),
            name,
            results[name],
            compare(name, results[name], departures),
            {**reported.get(key(name), {}), "departures": handed},
        )
        for name in selected
    ]
    yield from land_checked(context, lake, LAYER, DECLS, produced, "The Flink job's results")
