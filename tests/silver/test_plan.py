import pytest

from onering_assets.catalog import load_catalog
from onering_assets.errors import ConfigError
from onering_assets.silver import plan

RUN = plan.SilverNames("flights", "0a1b")


def test_publish_replaces_each_partition_with_validated_literals() -> None:
    flights = load_catalog().sql_table("silver", "flights")
    statements = plan.publish_statements(flights, ["2013-01", "2013-02"], RUN)
    rows = "ALTER TABLE silver.`flights` REPLACE PARTITION '{}' FROM silver.`flights__stage__0a1b`"
    rejects = (
        "ALTER TABLE silver.`flights_rejects` REPLACE PARTITION '{}'"
        " FROM silver.`flights_rejects__stage__0a1b`"
    )
    assert [s for s, _ in statements] == [
        rows.format("2013-01"),
        rejects.format("2013-01"),
        rows.format("2013-02"),
        rejects.format("2013-02"),
    ]
    assert statements[1][1] == {"allow_replace_partition_from_empty_source": 1}


@pytest.mark.parametrize("key", ["2013-13", "2013-01'; DROP TABLE x; --", "2014-01", "13-01"])
def test_partition_keys_are_validated_before_reaching_sql(key: str) -> None:
    flights = load_catalog().sql_table("silver", "flights")
    with pytest.raises(ConfigError, match="not a partition"):
        plan.publish_statements(flights, [key], RUN)


def test_whole_tables_publish_their_one_partition_idempotently() -> None:
    """EXCHANGE TABLES undoes itself when run twice; REPLACE PARTITION tuple() does not."""
    airlines = load_catalog().sql_table("silver", "airlines")
    names = plan.SilverNames("airlines", "0a1b")
    statements = [s for s, _ in plan.publish_statements(airlines, None, names)]
    assert statements == [
        "ALTER TABLE silver.`airlines` REPLACE PARTITION tuple()"
        " FROM silver.`airlines__stage__0a1b`",
        "ALTER TABLE silver.`airlines_rejects` REPLACE PARTITION tuple()"
        " FROM silver.`airlines_rejects__stage__0a1b`",
    ]


def test_staging_names_carry_the_run_and_are_recognized() -> None:
    names = plan.SilverNames("flights", "0a1b")
    for name in (names.stage_name, names.rejects_stage_name, names.candidates_name):
        match = plan.STAGING_NAME.search(name)
        assert match and match.group("run") == "0a1b"
    for old in ("flights__stage", "flights_rejects__stage", "flights__candidates"):
        match = plan.STAGING_NAME.search(old)
        assert match and match.group("run") is None
    for published in ("flights", "flights_rejects", "stage_stats"):
        assert not plan.STAGING_NAME.search(published)


def test_candidates_dedupe_on_the_declared_key() -> None:
    flights = load_catalog().sql_table("silver", "flights")
    statements = plan.stage_statements(flights, ["SELECT 1", "SELECT 2"], RUN)
    candidates = [s for s in statements if "__candidates__0a1b` ENGINE = Memory" in s]
    assert len(candidates) == 2 and "SELECT 2" in candidates[1]
    candidates = candidates[0]
    assert (
        "PARTITION BY _reject_reason = '', `flight_date`, `carrier`, `flight`, `origin`"
        in candidates
    )
    assert "'duplicate key'" in candidates
    assert "ORDER BY _ingested_at DESC, _row DESC, _raw)" in candidates
