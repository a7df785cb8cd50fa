"""The PyFlink job, launched through Dagster Pipes in the Flink environment, on real Flink.

One state (January and February through Silver) for the module: the job runs on a local
mini-cluster (a JVM started by PyFlink in the subprocess), its results are compared with
the same answers computed without Flink, and a departure planted out of order (later than
the watermark allows) makes Flink drop it: the check catches it and nothing is published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_bridge.processes import free_port
from onering_assets.definitions import build_definitions
from onering_assets.errors import ConfigError
from onering_assets.runner import check_keys, execute
from onering_assets.settings import Settings
from onering_assets.stream import flink_io
from onering_assets.stream.flink_assets import NAMES, compare, key
from onering_assets.stream.flink_resource import FlinkResource
from tests.compose_probes import probe
from tests.conftest import layer_keys, run, settings_for, silver_query

FLINK = FlinkResource()
pytestmark = pytest.mark.skipif(
    not Path(FLINK.python).is_file(),
    reason=f"the Flink environment is missing ({FLINK.python}); `make setup` creates it",
)
KEYS = {key(n) for n in NAMES}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, make_source) -> Iterator[Settings]:
    from onering_assets.resources.postgres import stop_embedded

    settings = settings_for(tmp_path_factory.mktemp("flink") / "state", make_source())
    yield settings
    stop_embedded(settings.postgres_dir)


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def built(settings: Settings, instance: dg.DagsterInstance) -> Settings:
    assert run(settings, instance=instance, select=layer_keys(settings, ("bronze", "silver")))
    summary = execute(build_definitions(settings), instance, assets=KEYS, progress=False)
    assert summary.success, summary.failures
    return settings


def published(settings: Settings, name: str) -> Path:
    return settings.lake_dir / "stream" / name / "data.parquet"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def latest(instance: dg.DagsterInstance, name: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(key(name))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_job_counts_every_departure_per_airport_hour_and_finds_delay_streaks(
    built: Settings, instance: dg.DagsterInstance
) -> None:
    hourly = pq.read_table(published(built, "departures_hourly"))
    [(departed, airports)] = silver_query(
        built,
        "SELECT count(), uniqExact(origin) FROM silver.flights"
        " WHERE dep_at IS NOT NULL AND dep_delay IS NOT NULL",
    )
    assert departed > 50_000 and sum(hourly["departures"].to_pylist()) == departed
    assert set(hourly["airport"].to_pylist()) == {"EWR", "JFK", "LGA"} and airports == 3
    # One hour window per airport and hour: no key twice.
    keys = list(zip(hourly["airport"].to_pylist(), hourly["hour_start"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys))

    streaks = pq.read_table(published(built, "delay_streaks")).to_pylist()
    assert streaks and all(s["min_delay"] > 15 and s["first_dep"] <= s["last_dep"] for s in streaks)
    # A streak's first flight really left more than 15 minutes late on that route.
    s = streaks[0]
    origin, dest = s["route"].split("-")
    [(delay,)] = silver_query(
        built,
        f"SELECT dep_delay FROM silver.flights WHERE carrier = '{s['first_carrier']}'"
        f" AND flight = {s['first_flight']} AND origin = '{origin}' AND dest = '{dest}'"
        f" AND toString(dep_at) = '{s['first_dep']}'",
    )
    assert delay > 15

    # What the job reported over Pipes reached the materializations.
    for name in NAMES:
        meta = latest(instance, name)
        assert meta["flink_target"] == "mini-cluster" and len(str(meta["flink_job_id"])) == 32
        assert (
            meta["flink_rows"] == meta["rows"] == pq.read_metadata(published(built, name)).num_rows
        )
        assert meta["departures"] == departed


def test_checks_alone_audit_the_published_files_against_silver(
    built: Settings, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(built)
    summary = execute(defs, instance, checks=check_keys(defs, KEYS), progress=False)
    assert [c[2] for c in summary.checks] == [True, True], summary.checks

    # A planted value in the published hourly file: the audit names the differing row.
    path = published(built, "departures_hourly")
    table = pq.read_table(path)
    counts = table["departures"].to_pylist()
    counts[0] += 1
    pq.write_table(table.set_column(2, "departures", [counts]), path)
    summary = execute(defs, instance, checks=check_keys(defs, KEYS), progress=False)
    outcome = {c[0]: c for c in summary.checks}["stream/departures_hourly"]
    assert outcome[2] is False and "1 with other values" in outcome[3], outcome


def test_a_departure_later_than_the_watermark_fails_the_check_and_publishes_nothing(
    built: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {n: digest(published(built, n)) for n in NAMES}
    export = flink_io.export_departures

    def late_row(client: Any, path: Path) -> int:
        handed = export(client, path)
        with path.open("a", encoding="utf-8") as f:  # two hours behind the last departure
            f.write("ZZ,1,JFK,LAX,2013-01-01 05:00:00,30\n")
        return handed + 1

    monkeypatch.setattr(flink_io, "export_departures", late_row)
    # One asset selected (as an Airflow task selects it): only its query runs.
    hourly_only = {key("departures_hourly")}
    summary = execute(build_definitions(built), instance, assets=hourly_only, progress=False)

    assert not summary.success
    [hourly] = summary.checks
    assert hourly[:3] == ("stream/departures_hourly", "matches_reference", False), hourly
    assert "1 with other values" in hourly[3], hourly
    assert {n: digest(published(built, n)) for n in NAMES} == before


def test_the_same_job_runs_on_a_real_standalone_cluster_on_loopback(
    built: Settings,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A JobManager and a TaskManager from the wheel's own scripts; the asset submits there."""
    import psutil

    from onering_assets.stream import flink_cluster

    cluster = flink_cluster.start(tmp_path / "flink-cluster")
    pids = cluster.pids()
    try:
        assert len(pids) == 2  # a standalone session JobManager and a TaskExecutor
        listening = {
            c.laddr.ip
            for pid in pids
            for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening

        monkeypatch.setenv("ONERING_FLINK_JOBMANAGER", cluster.jobmanager)
        streaks = {key("delay_streaks")}
        summary = execute(build_definitions(built), instance, assets=streaks, progress=False)
        assert summary.success, summary.failures
        assert [c[2] for c in summary.checks] == [True]
        meta = latest(instance, "delay_streaks")
        assert meta["flink_target"] == cluster.jobmanager
        jobs = {j["jid"]: j["state"] for j in cluster.rest("/jobs/overview")["jobs"]}
        assert jobs.get(meta["flink_job_id"]) == "FINISHED", jobs
        # compose's healthchecks of the same release, against these two
        rest = f"127.0.0.1/{cluster.rest_port}"
        assert probe("flink-jobmanager", "127.0.0.1/8081", rest) == 0
        assert probe("flink-taskmanager", "flink-jobmanager/8081", rest) == 0
    finally:
        flink_cluster.stop(cluster)
    assert not any(psutil.pid_exists(p) for p in pids)
    assert probe("flink-jobmanager", "127.0.0.1/8081", rest) != 0


def test_without_the_flink_environment_the_step_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"make setup.*envs/flink"):
        FlinkResource(python=str(tmp_path / "python")).interpreter()
    with pytest.raises(ConfigError, match="host:port"):
        FlinkResource(jobmanager="flink-jobmanager").interpreter()
    # A JobManager that is not there: one line naming it, before any JVM starts.
    nobody = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match=rf"JobManager at http://{nobody}/overview does not"):
        FlinkResource(jobmanager=nobody).interpreter()


def test_a_row_flink_gives_twice_fails_the_check() -> None:
    """Rows are compared by key and counted: a duplicated row is an extra one."""
    departures = pa.table(
        {
            "carrier": ["UA", "UA", "AA"],
            "flight": pa.array([1, 2, 3], pa.int32()),
            "origin": ["EWR", "EWR", "JFK"],
            "dest": ["ORD", "ORD", "LAX"],
            "dep_local": ["2013-01-01 05:10:00", "2013-01-01 05:40:00", "2013-01-01 06:00:00"],
            "dep_delay": pa.array([20, -3, 0], pa.int32()),
        }
    )
    want = flink_io.reference("departures_hourly", departures)
    assert compare("departures_hourly", want, departures).passed
    twice = compare("departures_hourly", pa.concat_tables([want, want.slice(0, 1)]), departures)
    assert not twice.passed and "1 extra" in twice.summary
