import pytest

from onering_assets.catalog import load_catalog
from onering_assets.errors import ConfigError
from onering_assets.silver import plan


def test_publish_replaces_each_partition_with_validated_literals() -> None:
    flights = load_catalog().sql_table("silver", "flights")
    statements = plan.publish_statements(flights, ["2013-01", "2013-02"])
    rows = "ALTER TABLE silver.`flights` REPLACE PARTITION '{}' FROM silver.`flights__stage`"
    rejects = (
        "ALTER TABLE silver.`flights_rejects` REPLACE PARTITION '{}'"
        " FROM silver.`flights_rejects__stage`"
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
        plan.publish_statements(flights, [key])


def test_whole_tables_publish_by_exchange() -> None:
    airlines = load_catalog().sql_table("silver", "airlines")
    statements = [s for s, _ in plan.publish_statements(airlines, None)]
    assert statements == [
        "EXCHANGE TABLES silver.`airlines__stage` AND silver.`airlines`",
        "EXCHANGE TABLES silver.`airlines_rejects__stage` AND silver.`airlines_rejects`",
    ]


def test_candidates_dedupe_on_the_declared_key() -> None:
    flights = load_catalog().sql_table("silver", "flights")
    statements = plan.stage_statements(flights, ["SELECT 1", "SELECT 2"])
    candidates = [s for s in statements if "__candidates` ENGINE = Memory" in s]
    assert len(candidates) == 2 and "SELECT 2" in candidates[1]
    candidates = candidates[0]
    assert (
        "PARTITION BY _reject_reason = '', `flight_date`, `carrier`, `flight`, `origin`"
        in candidates
    )
    assert "'duplicate key'" in candidates
