"""Bronze through Spark (``ONERING_BRONZE_ENGINE=spark``) equals Bronze through pyarrow.

The same landed files are ingested twice, once per engine, into two states; every Bronze
file (each month of flights and weather, each dimension) and every quarantined line must be
identical row for row, the ingestion columns ``_source``, ``_row`` and ``_partition``
included: only ``_batch_id`` and ``_ingested_at`` (the run and its clock) differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from onering_assets.settings import Settings
from tests.compose_probes import probe
from tests.conftest import layer_keys, run, settings_for

pytest.importorskip("pyspark", reason="pyspark is not installed (make setup installs it)")
RUN_COLUMNS = ["_batch_id", "_ingested_at"]
# Every kind of line the Arrow path sets aside, between good rows, with CRLF and a blank line.
GOOD = (
    "2013,1,{day},517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-0{day} 05:00:00"
)
HEADER = (
    "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,"
    "carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour"
)
PLANTED = b"\n".join(
    [
        HEADER.encode(),
        GOOD.format(day=1).encode(),
        b"2013,1,2,517,515,2,830",  # too few fields
        GOOD.format(day=2).encode() + b",extra",  # too many
        b'2013,1,3,"517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,x,y',  # open quote
        GOOD.format(day=4).replace("EWR", "EW\xff").encode("latin-1"),  # not UTF-8
        b"",
        GOOD.format(day=5).encode() + b"\r",  # CRLF
        b"2013,13,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-13-01",
        GOOD.format(day=6).replace("N14228", "NA").replace(",11,", ",,").encode(),
        GOOD.format(day=7).replace("2013,1,", "2013,2,").replace("-01-", "-02-").encode(),
        # RFC 4180 quoting, as Arrow reads it (review): a doubled quote inside a quoted value,
        # a backslash as an ordinary character, a quote inside an unquoted value
        GOOD.format(day=8).replace("N14228", '"N1""42\\28"').encode(),
        GOOD.format(day=9).replace("UA,1545", 'U"A,1545').encode(),
        b'2013,1,10,517,515,2,830,819,11,UA,1545,"N14',  # a quoted line break: refused
        b'228",EWR,IAH,227,1400,5,15,2013-01-10 05:00:00',  # (its second line too)
        b"   ",  # spaces only: refused, never skipped
    ]
)


def lake_contents(settings: Settings) -> dict[str, list[dict]]:
    """Every Parquet file of Bronze and of its quarantine, by path with the run id removed."""
    out: dict[str, list[dict]] = {}
    for path in sorted((settings.lake_dir).rglob("*.parquet")):
        parts = path.relative_to(settings.lake_dir).parts
        if parts[0] == "quarantine":  # quarantine/bronze/<table>/<run id>/<label>.parquet
            parts = (*parts[:3], "<run>", *parts[4:])
        elif parts[0] != "bronze":
            continue
        table = pq.read_table(path)
        table = table.drop_columns([c for c in RUN_COLUMNS if c in table.column_names])
        out["/".join(parts)] = table.to_pylist()
    return out


def ingest(settings: Settings, instance: dg.DagsterInstance) -> dict[str, list[dict]]:
    summary = run(settings, instance=instance, select=layer_keys(settings, ("bronze",)))
    assert summary.success or summary.failures, summary
    return lake_contents(settings)


@pytest.fixture(scope="module")
def by_arrow_jan_feb(
    tmp_path_factory: pytest.TempPathFactory, make_source, instance: dg.DagsterInstance
) -> tuple[Path, dict[str, list[dict]]]:
    """January and February landed by pyarrow (the default engine): the reference."""
    source = make_source()
    state = tmp_path_factory.mktemp("arrow") / "state"
    return source, ingest(settings_for(state, source), instance)


@pytest.mark.parametrize("planted", [False, True], ids=["jan-feb", "planted-bad-lines"])
def test_spark_and_arrow_land_identical_bronze(
    tmp_path: Path,
    make_source,
    instance: dg.DagsterInstance,
    by_arrow_jan_feb: tuple[Path, dict[str, list[dict]]],
    planted: bool,
) -> None:
    source, by_arrow = by_arrow_jan_feb
    if planted:
        source = make_source()
        (source / "flights.csv").write_bytes(PLANTED)
        by_arrow = ingest(settings_for(tmp_path / "arrow", source), instance)
    spark = replace(settings_for(tmp_path / "spark", source), bronze_engine="spark")

    by_spark = ingest(spark, instance)

    assert by_arrow.keys() == by_spark.keys()
    for path in by_arrow:
        assert by_spark[path] == by_arrow[path], path
    months = [p for p in by_arrow if p.startswith("bronze/flights/month=")]
    rows = sum(len(by_arrow[p]) for p in months)
    if planted:
        [malformed] = [p for p in by_arrow if p.endswith("flights/<run>/malformed.parquet")]
        reasons = sorted(r["reason"] for r in by_arrow[malformed])
        assert len(reasons) == 7 and any("UTF-8" in r for r in reasons), reasons
        assert rows == 6  # January 1, 5 (CRLF), 6 (NA and empty), 8, 9; February 7
        tails = {r["tailnum"] for p in months for r in by_arrow[p]}
        assert 'N1"42\\28' in tails  # a doubled quote is one quote, a backslash itself
        [unassigned] = [p for p in by_arrow if p.endswith("flights/<run>/unassigned.parquet")]
        assert [r["month"] for r in by_arrow[unassigned]] == ["13"]
    else:
        assert rows > 50_000 and len(months) == 2


def test_bronze_through_spark_runs_on_a_real_standalone_cluster(
    tmp_path: Path, by_arrow_jan_feb: tuple[Path, dict[str, list[dict]]]
) -> None:
    """A master and a worker from pyspark's own classes on loopback; `onering` uses them."""
    import psutil

    from onering_assets.resources import spark_cluster

    source, by_arrow = by_arrow_jan_feb
    cluster = spark_cluster.start(tmp_path / "spark-cluster")
    try:
        listening = {
            c.laddr.ip
            for pid in cluster.pids
            for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
        # compose's healthchecks of the same release, against these two
        assert probe("spark-master", "127.0.0.1/8080", f"127.0.0.1/{cluster.ui_port}") == 0
        assert probe("spark-worker", "127.0.0.1/8081", f"127.0.0.1/{cluster.worker_ui_port}") == 0
        env = {
            **os.environ,
            "ONERING_STATE_DIR": str(tmp_path / "on-cluster"),
            "ONERING_SOURCE_DIR": str(source),
            "ONERING_BRONZE_ENGINE": "spark",
            "ONERING_SPARK_MASTER": cluster.master,
        }
        args = ["materialize", "--select", "group:bronze", "--from", "2013-01", "--to", "2013-02"]
        done = subprocess.run(
            [sys.executable, "-m", "onering_assets.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        apps = cluster.status()
        ran = apps.get("activeapps", []) + apps.get("completedapps", [])
        assert ran, apps  # the run's SparkSession was an application of this master
    finally:
        spark_cluster.stop(cluster)
    assert not any(psutil.pid_exists(p) for p in cluster.pids)
    assert probe("spark-master", "127.0.0.1/8080", f"127.0.0.1/{cluster.ui_port}") != 0
    on_cluster = lake_contents(settings_for(tmp_path / "on-cluster", source))
    assert on_cluster.keys() == by_arrow.keys()
    for path in by_arrow:
        assert on_cluster[path] == by_arrow[path], path


def test_executors_elsewhere_get_the_drivers_name_and_the_unpacked_file_s_folder(
    tmp_path: Path,
) -> None:
    """compose's worker runs in a container: it reaches the driver by ONERING_SPARK_DRIVER_HOST
    and reads a .zip source unpacked under ONERING_SPARK_SCRATCH_DIR (mounted there)."""
    import zipfile

    from onering_assets.bronze import spark_ingest
    from onering_assets.resources import SourceResource
    from onering_assets.resources.spark import SparkResource

    on_host = SparkResource(master="spark://127.0.0.1:7077").spark_config()
    assert (on_host["spark.driver.host"], on_host["spark.driver.bindAddress"]) == (
        "127.0.0.1",
        "127.0.0.1",
    )
    named = SparkResource(master="spark://127.0.0.1:7077", driver_host="host.docker.internal")
    config = named.spark_config()
    assert (config["spark.driver.host"], config["spark.driver.bindAddress"]) == (
        "host.docker.internal",
        "0.0.0.0",
    )

    source = tmp_path / "source"
    source.mkdir()
    with zipfile.ZipFile(source / "flights.csv.zip", "w") as archive:
        archive.writestr("flights.csv", PLANTED)
    scratch = tmp_path / "scratch" / "spark"
    spark = SparkResource().session()
    unpacked = spark_ingest.land(spark, SourceResource(path=str(source)), "flights", str(scratch))
    in_temp = spark_ingest.land(spark, SourceResource(path=str(source)), "flights")
    assert unpacked.table.equals(in_temp.table) and unpacked.table.num_rows == 7  # + month 13
    assert scratch.is_dir() and not any(scratch.iterdir())  # used, then cleaned up


def test_a_cluster_whose_ui_port_another_process_took_is_found_where_spark_moved_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port free when chosen can be taken before the JVM binds it: Spark moves up one.

    CI once saw the master's `/json/` answered by another server's HTML page: the cluster
    must follow the ports its logs name, never a port someone else holds.
    """
    import http.server
    import threading

    from onering_assets.resources import spark_cluster

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    taken = other.server_address[1]
    chosen = spark_cluster._free_ports(4)
    monkeypatch.setattr(spark_cluster, "_free_ports", lambda n: [chosen[0], taken, *chosen[2:]])
    try:
        cluster = spark_cluster.start(tmp_path / "spark-cluster", cores=1, memory="512m")
        try:
            assert cluster.ui_port != taken
            status = cluster.status()
            assert status["url"] == cluster.master
            assert [w["state"] for w in status["workers"]] == ["ALIVE"]
        finally:
            spark_cluster.stop(cluster)
    finally:
        other.shutdown()
