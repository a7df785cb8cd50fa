import pytest

from onering_assets.catalog import load_catalog
from onering_assets.errors import ConfigError
from onering_assets.lineage.sql import (
    parse_declared_sql,
    parse_select,
    replace_tables,
    upstream_tables,
)


def test_upstream_tables_ignore_ctes_and_other_schemas() -> None:
    tree = parse_select(
        "WITH x AS (SELECT * FROM silver.flights) SELECT * FROM x JOIN silver.airlines a ON 1"
        " JOIN system.numbers n ON 1",
        where="t",
    )
    assert upstream_tables(tree) == (("silver", "airlines"), ("silver", "flights"))


def test_non_select_is_refused() -> None:
    with pytest.raises(ConfigError, match="one SELECT"):
        parse_declared_sql("DROP TABLE silver.flights", where="t")


def test_replace_tables_keeps_the_rest_byte_identical() -> None:
    sql = "SELECT toStartOfMonth(d) AS m FROM silver.flights AS f -- silver.flights stays here\n"
    out = replace_tables(sql, "silver", {"flights": "(SELECT 1) "})
    assert (
        out == "SELECT toStartOfMonth(d) AS m FROM (SELECT 1)  AS f -- silver.flights stays here\n"
    )


def test_column_lineage_of_declared_tables() -> None:
    catalog = load_catalog()
    cmp = catalog.sql_table("gold", "carrier_monthly_performance")
    assert cmp.parsed.column_lineage["carrier_name"] == [("silver", "airlines", '"name"')]
    assert ("silver", "flights", '"arr_delay"') in cmp.parsed.column_lineage["pct_arr_delayed_15"]
    flights = catalog.sql_table("silver", "flights")
    assert {c for _, _, c in flights.parsed.column_lineage["sched_dep_at"]} == {
        '"year"',
        '"month"',
        '"day"',
        '"sched_dep_time"',
    }
