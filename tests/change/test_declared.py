"""Declarations compared (onering_assets/change/declared.py): what changed, and for whom.

Real declared tables, edited in memory the way a data engineer edits the files: a changed
expression is breaking for exactly the downstream columns computed from it; a new column
nobody reads is non-breaking; a change to a column downstream tables group or join on, or
to the rows a table keeps (a WHERE), is breaking for every downstream column; a change to
checks alone writes no different data; a change to a Silver reject reason re-shapes the table.
"""

from __future__ import annotations

import dataclasses

import pytest

from onering_assets.catalog import load_catalog, schema_of
from onering_assets.change.declared import breaking, compare, declaration
from onering_assets.lineage.sql import parse_declared_sql

CATALOG = load_catalog()
SCHEMAS = {"silver": schema_of(CATALOG.bronze), "gold": schema_of(CATALOG.silver)}
GOLD = CATALOG.gold


def edited(layer: str, name: str, old: str, new: str, **changes):
    table = CATALOG.sql_table(layer, name)
    assert old in table.declared_sql
    sql = table.declared_sql.replace(old, new)
    parsed = parse_declared_sql(sql, where="edited", schema=SCHEMAS[layer])
    return dataclasses.replace(table, declared_sql=sql, parsed=parsed, **changes)


def declared(table):
    return declaration(table, SCHEMAS[table.layer])


def impacts(change):
    impacts = (breaking(change, g, SCHEMAS["gold"]) for g in GOLD)
    return {i.key: i.columns for i in impacts if i.breaking}


def test_an_unchanged_project_compares_unchanged() -> None:
    for table in (*CATALOG.silver, *GOLD):
        again = declared(CATALOG.sql_table(table.layer, table.name))
        change = compare(again["key"], declared(table), again)
        assert change.kind == "unchanged" and not change.data_changed


def test_a_changed_expression_is_breaking_for_the_columns_computed_from_it() -> None:
    flights = CATALOG.sql_table("silver", "flights")
    new = edited(
        "silver", "flights", "arr_delay_min AS arr_delay", "arr_delay_min + 1 AS arr_delay"
    )
    change = compare("silver/flights", declared(flights), declared(new))
    # ClickHouse prefers the column to the alias (prefer_column_name_to_alias): the
    # `arr_delay` that _reject_reason tests is the landed string, untouched by the edit.
    assert (change.kind, change.shape_changed) == ("changed", False)
    assert change.changed == ("arr_delay",)
    assert impacts(change) == {
        "gold/carrier_monthly_performance": ("avg_arr_delay", "pct_arr_delayed_15"),
        "gold/route_performance": ("avg_arr_delay",),
    }


def test_a_change_to_a_reject_reason_re_shapes_the_table() -> None:
    """A parse inside a CTE that the reject reasons also read: the rows kept may change."""
    flights = CATALOG.sql_table("silver", "flights")
    new = edited(
        "silver",
        "flights",
        "toInt32OrNull(dep_delay) AS dep_delay_min",
        "toInt32OrNull(trimBoth(dep_delay)) AS dep_delay_min",
    )
    change = compare("silver/flights", declared(flights), declared(new))
    assert change.changed == ("dep_at", "dep_delay", "_reject_reason")
    assert change.shape_changed
    everything = {g.name: g.parsed.output_columns for g in GOLD}
    assert impacts(change) == {f"gold/{name}": cols for name, cols in everything.items()}


def test_a_new_column_nobody_reads_is_not_breaking() -> None:
    flights = CATALOG.sql_table("silver", "flights")
    new = edited(
        "silver",
        "flights",
        "    dep_time_num IS NULL AS cancelled,",
        "    dep_time_num IS NULL AS cancelled,\n    air_time_min / 60 AS air_hours,",
    )
    change = compare("silver/flights", declared(flights), declared(new))
    assert (change.added, change.changed, change.removed) == (("air_hours",), (), ())
    assert change.data_changed and impacts(change) == {}


def test_a_column_downstream_groups_on_is_breaking_for_every_downstream_column() -> None:
    flights = CATALOG.sql_table("silver", "flights")
    new = edited("silver", "flights", "carrier_code AS carrier", "lower(carrier_code) AS carrier")
    change = compare("silver/flights", declared(flights), declared(new))
    assert change.changed == ("carrier",)
    mart = CATALOG.sql_table("gold", "carrier_monthly_performance")
    assert impacts(change)["gold/carrier_monthly_performance"] == mart.parsed.output_columns
    assert "gold/route_performance" not in impacts(change)  # it never reads carrier


def test_a_new_filter_reshapes_the_table_for_every_reader() -> None:
    airlines = CATALOG.sql_table("silver", "airlines")
    new = edited(
        "silver", "airlines", "FROM bronze.airlines", "FROM bronze.airlines WHERE carrier != 'AA'"
    )
    change = compare("silver/airlines", declared(airlines), declared(new))
    assert change.shape_changed and change.changed == ()
    mart = CATALOG.sql_table("gold", "carrier_monthly_performance")
    assert impacts(change) == {"gold/carrier_monthly_performance": mart.parsed.output_columns}


def test_a_changed_range_reshapes_the_table() -> None:
    weather = CATALOG.sql_table("silver", "weather")
    ranges = {**weather.ranges, "wind_speed": (0.0, 100.0)}
    change = compare(
        "silver/weather", declared(weather), declared(dataclasses.replace(weather, ranges=ranges))
    )
    assert change.shape_changed and "gold/airport_daily_weather" in impacts(change)


def test_checks_alone_change_no_data() -> None:
    mart = CATALOG.sql_table("gold", "route_performance")
    new = dataclasses.replace(mart, checks={**mart.checks, "max_change_pct": 5})
    change = compare("gold/route_performance", declared(mart), declared(new))
    assert change.kind == "changed" and change.checks_changed and not change.data_changed


@pytest.mark.parametrize("kind", ["added", "removed"])
def test_an_added_or_removed_table(kind: str) -> None:
    airlines = declared(CATALOG.sql_table("silver", "airlines"))
    change = compare(
        "silver/airlines",
        None if kind == "added" else airlines,
        airlines if kind == "added" else None,
    )
    assert change.kind == kind and change.data_changed
    if kind == "removed":
        assert impacts(change) == {
            "gold/carrier_monthly_performance": CATALOG.sql_table(
                "gold", "carrier_monthly_performance"
            ).parsed.output_columns
        }
