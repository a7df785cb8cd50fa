"""The lake on a local folder and on a real S3 API (moto's server on loopback), one code path.

moto stands in for MinIO, which cannot be installed here; chDB reads the same objects
through ClickHouse's own ``s3()`` table function, as a ClickHouse server would from MinIO.
"""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onering_assets import journal
from onering_assets.definitions import build_definitions
from onering_assets.errors import StoreBusyError
from onering_assets.resources import ClickHouseResource, LakeResource, PostgresResource
from onering_assets.runner import execute
from tests.conftest import S3_KEY, S3_SECRET, layer_keys, settings_for, silver_query

KEY, SECRET = S3_KEY, S3_SECRET


@pytest.fixture(scope="module")
def lock_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A shared lake's locks live in Postgres (the embedded one here)."""
    return PostgresResource(embedded_dir=str(tmp_path_factory.mktemp("pg") / "pg")).conninfo()


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> LakeResource:
    if request.param == "local":
        return LakeResource(url=(tmp_path / "lake").as_uri())
    endpoint = request.getfixturevalue("s3_endpoint")
    return LakeResource(
        url=f"s3://lake/{tmp_path.name}",
        s3_endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        lock_dsn=request.getfixturevalue("lock_dsn"),
    )


def month(rows: int, key: str) -> pa.Table:
    return pa.table({"n": pa.array([str(i) for i in range(rows)]), "_partition": [key] * rows})


def test_write_replaces_a_partition_whole(lake: LakeResource) -> None:
    lake.write("bronze", "t", "2013-01", month(5, "2013-01"))
    lake.write("bronze", "t", "2013-01", month(3, "2013-01"))
    assert lake.read("bronze", "t", "2013-01").num_rows == 3
    assert lake.exists("bronze", "t", "2013-01") and not lake.exists("bronze", "t", "2013-02")
    assert lake.uri("bronze", "t", "2013-01").endswith("bronze/t/month=2013-01/data.parquet")


def test_quarantine_keeps_rejected_input(lake: LakeResource) -> None:
    path = lake.quarantine("bronze", "t", "run-1", "2013-01", month(2, "2013-01"))
    assert "quarantine/bronze/t/run-1/2013-01.parquet" in path


def test_clickhouse_reads_the_selected_months(lake: LakeResource, tmp_path: Path) -> None:
    for key, rows in (("2013-01", 2), ("2013-02", 3), ("2013-03", 4)):
        lake.write("bronze", "t", key, month(rows, key))
    source, params = lake.clickhouse_source("bronze", "t", ["2013-01", "2013-03"])
    with ClickHouseResource(dsn=f"chdb://{tmp_path / 'ch'}").session() as client:
        result = client.query(
            f"SELECT _partition, count() FROM {source} GROUP BY 1 ORDER BY 1", parameters=params
        )
    assert result.result_rows == [("2013-01", 2), ("2013-03", 4)]


@pytest.mark.slow
def test_pipeline_runs_unchanged_on_an_s3_lake(
    s3_endpoint: str, tmp_path: Path, make_source
) -> None:
    settings = settings_for(tmp_path, make_source())
    lake = LakeResource(
        url="s3://lake/pipeline",
        s3_endpoint_url=s3_endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        # A shared lake serializes publication with Postgres advisory locks (here the
        # embedded Postgres, as ONERING_POSTGRES_DSN would be in compose).
        lock_dsn=PostgresResource(embedded_dir=str(settings.postgres_dir)).conninfo(),
    )
    defs = build_definitions(settings, resources={"lake": lake})
    # The medallion and the feature views (the model needs test months one month lacks).
    keys = layer_keys(settings, ("bronze", "silver", "gold", "features"))
    with dg.instance_for_test() as instance:
        summary = execute(
            defs, instance, assets=keys, first="2013-01", last="2013-01", progress=False
        )
    assert summary.success, summary.failures
    assert not (settings.lake_dir).exists()  # nothing went to the local folder
    assert lake.exists("features", "carrier_stats")
    assert silver_query(settings, "SELECT count() FROM silver.flights") == [(27004,)]
    assert all(passed for _, _, passed, _ in summary.checks)
    assert lake.staging_paths() == []


def test_publish_moves_every_partition_and_leaves_no_staging(lake: LakeResource) -> None:
    parts = {"2013-01": month(2, "2013-01"), "2013-02": month(3, "2013-02")}
    lake.publish("bronze", "t", "run-1", parts)  # type: ignore[arg-type]
    assert lake.read("bronze", "t", "2013-01").num_rows == 2
    assert lake.read("bronze", "t", "2013-02").num_rows == 3
    assert lake.staging_paths() == []
    assert lake.recover() == []
    lake.publish("bronze", "t", "run-2", {"2013-01": month(1, "2013-01")})  # type: ignore[arg-type]
    staging = Path(lake.url.removeprefix("file://")) / "_staging"
    if staging.exists():  # local lake: no empty folder per run is left behind either
        assert list(staging.iterdir()) == []


def test_a_crashed_publish_is_rolled_forward_whole(lake: LakeResource) -> None:
    """Journal written and one month moved when the run died: recover moves the rest."""
    lake.publish(
        "bronze", "t", "old", {"2013-01": month(1, "2013-01"), "2013-02": month(1, "2013-02")}
    )  # type: ignore[arg-type]
    fs, base = lake._filesystem()
    moves = []
    for key, rows in (("2013-01", 5), ("2013-02", 6)):
        final = lake.relative_path("bronze", "t", key)
        staged = f"_staging/new/{final}"
        fs.create_dir(f"{base}/{staged}".rsplit("/", 1)[0], recursive=True)
        pq.write_table(month(rows, key), f"{base}/{staged}", filesystem=fs)
        moves.append([staged, final])
    journal.LakeJournal(fs, base).write(journal.Entry("new", "bronze", "t", {"moves": moves}))
    fs.move(f"{base}/{moves[0][0]}", f"{base}/{moves[0][1]}")
    # The publish window: January is new, February still old.
    assert (
        lake.read("bronze", "t", "2013-01").num_rows,
        lake.read("bronze", "t", "2013-02").num_rows,
    ) == (5, 1)
    finished = lake.recover()
    assert [e.run for e in finished] == ["new"]
    assert lake.read("bronze", "t", "2013-01").num_rows == 5
    assert lake.read("bronze", "t", "2013-02").num_rows == 6
    assert lake.staging_paths() == []
    assert journal.LakeJournal(fs, base).pending() == []


def test_orphaned_staging_is_deleted_unless_its_run_is_alive(lake: LakeResource) -> None:
    fs, base = lake._filesystem()
    for run in ("dead", "alive"):
        path = f"{base}/_staging/{run}/bronze/t/month=2013-01/data.parquet"
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(month(1, "2013-01"), path, filesystem=fs)
    locks = lake.locks()
    with locks.hold("stage:bronze.t.alive", what="a live run"):
        lake.recover()
        assert [p.split("/_staging/")[1].split("/")[0] for p in lake.staging_paths()] == ["alive"]
    lake.recover()
    assert lake.staging_paths() == []


def test_a_publish_that_cannot_get_the_lock_leaves_nothing_behind(lake: LakeResource) -> None:
    lake.publish("bronze", "t", "old", {"2013-01": month(1, "2013-01")})  # type: ignore[arg-type]
    impatient = lake.model_copy(update={"lock_timeout_s": 0.3})
    holder = lake.locks()
    with holder.hold("publish:bronze.t", what="another run"), pytest.raises(StoreBusyError):
        impatient.publish("bronze", "t", "new", {"2013-01": month(4, "2013-01")})  # type: ignore[arg-type]
    holder.close()
    assert lake.read("bronze", "t", "2013-01").num_rows == 1
    assert lake.staging_paths() == []
