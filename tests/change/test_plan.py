"""The plan (onering_assets/change/plan.py) over the project's real declarations.

What is deployed is built here the way publishes record it (state.Deployed per partition,
with the sources of the tables each one read); the files are edited in memory the way a
data engineer edits them. No store is opened: tests/change/test_apply.py runs plan and apply
end to end on real stores.
"""

from __future__ import annotations

import dataclasses

from onering_assets.change.plan import Plan, make_plan
from onering_assets.change.sources import Source, project_sources
from onering_assets.change.state import WHOLE, Deployed
from onering_assets.settings import PLATFORM_DIR

MONTHS = ["2013-01", "2013-02"]
PROJECT = project_sources(PLATFORM_DIR)
MONTHLY = {"silver/flights", "silver/weather", "gold/carrier_monthly_performance",
           "gold/airport_daily_weather"}  # fmt: skip


def deploy(sources: dict[str, Source], months: list[str] = MONTHS) -> dict:
    deployed = {}
    for key, source in sources.items():
        if source.layer == "bronze":
            continue
        inputs = {r: sources[r].digest for r in source.reads() if r in sources}
        parts = months if key in MONTHLY else [WHOLE]
        deployed[key] = {p: Deployed(key, p, source.digest, inputs, "run-1") for p in parts}
    return deployed


def edit(key: str, old: str, new: str, field: str = "sql", sources=PROJECT) -> dict:
    source = sources[key]
    assert old in getattr(source, field), f"{old!r} not in {key}'s {field}"
    changed = dataclasses.replace(source, **{field: getattr(source, field).replace(old, new)})
    return {**sources, key: changed}


def plan(current: dict[str, Source], deployed: dict | None = None) -> Plan:
    known = {s.digest: s for s in PROJECT.values()}
    return make_plan(
        current,
        deploy(PROJECT) if deployed is None else deployed,
        lambda digests: {d: known[d] for d in digests if d in known},
        lambda bronze: MONTHS,
    )


def summary(result: Plan) -> dict[str, tuple[str, list[str]]]:
    return {t.key: (t.status, t.rebuild) for t in result.tables}


def downstream(result: Plan, key: str) -> dict[str, tuple[str, ...]]:
    table = result.get(key)
    assert table is not None
    return {i.key: i.columns for i in table.downstream}


def test_an_unchanged_project_plans_nothing() -> None:
    result = plan(PROJECT)
    assert result.empty and result.declared == 11


def test_a_changed_mart_expression_rebuilds_that_mart_and_nothing_else() -> None:
    current = edit(
        "gold/carrier_monthly_performance",
        "avg(f.arr_delay) AS avg_arr_delay",
        "avg(f.arr_delay) + 1 AS avg_arr_delay",
    )
    result = plan(current)
    mart = result.get("gold/carrier_monthly_performance")
    assert mart is not None and mart.change is not None
    assert (mart.status, mart.change.changed, mart.change.shape_changed) == (
        "changed",
        ("avg_arr_delay",),
        False,
    )
    assert summary(result) == {"gold/carrier_monthly_performance": ("changed", MONTHS)}
    assert mart.downstream == []  # no declared table reads a Gold mart


def test_a_breaking_silver_change_names_each_downstream_column_it_breaks() -> None:
    current = edit("silver/flights", "arr_delay_min AS arr_delay", "arr_delay_min + 1 AS arr_delay")
    result = plan(current)
    impacts = downstream(result, "silver/flights")
    assert impacts["gold/carrier_monthly_performance"] == ("avg_arr_delay", "pct_arr_delayed_15")
    assert impacts["gold/route_performance"] == ("avg_arr_delay",)
    assert impacts["gold/airport_daily_weather"] == ()  # reads flights, not arr_delay
    # The views filter on arr_delay (WHERE arr_delay IS NOT NULL): every row may change.
    assert "carrier_mean_arr_delay_28d" in impacts["features/carrier_stats_source"]
    assert summary(result) == {
        "silver/flights": ("changed", MONTHS),
        "gold/carrier_monthly_performance": ("affected", MONTHS),
        "gold/route_performance": ("affected", [WHOLE]),
        "features/carrier_stats_source": ("affected", [WHOLE]),
        "features/route_stats_source": ("affected", [WHOLE]),
        # recorded against the new flights, never rebuilt
        "gold/airport_daily_weather": ("record", []),
    }
    weather = result.get("gold/airport_daily_weather")
    assert weather is not None and weather.record == MONTHS


def test_a_new_column_nobody_reads_is_non_breaking() -> None:
    current = edit(
        "silver/flights",
        "arr_delay_min AS arr_delay,",
        "arr_delay_min AS arr_delay,\n    arr_delay_min * 60 AS arr_delay_s,",
    )
    result = plan(current)
    flights = result.get("silver/flights")
    assert flights is not None and flights.change is not None
    assert (flights.status, flights.change.added, flights.change.changed) == (
        "changed",
        ("arr_delay_s",),
        (),
    )
    assert flights.rebuild == MONTHS and not flights.breaking_for
    assert set(downstream(result, "silver/flights")) >= {"gold/carrier_monthly_performance"}
    assert {t.key: t.rebuild for t in result.tables if t.key != "silver/flights"} == {
        k: [] for k in downstream(result, "silver/flights")
    }


def test_a_change_to_the_rows_a_table_keeps_rebuilds_every_column() -> None:
    current = edit("gold/airport_daily_weather", "LEFT JOIN daily_weather", "JOIN daily_weather")
    result = plan(current)
    mart = result.get("gold/airport_daily_weather")
    assert mart is not None and mart.change is not None and mart.change.shape_changed
    assert mart.rebuild == MONTHS and mart.columns == ("*",)


def test_a_change_to_checks_alone_re_audits_and_rebuilds_nothing() -> None:
    current = edit("silver/flights", "max_reject_pct:", "max_reject_pct: 4 #", field="spec")
    result = plan(current)
    flights = result.get("silver/flights")
    assert flights is not None
    assert (flights.status, flights.audit, flights.rebuild, flights.record) == (
        "checks",
        True,
        [],
        MONTHS,
    )
    # What reads flights rebuilds nothing; it is recorded as built from the new flights.
    assert {t.key: (t.status, t.rebuild) for t in result.tables if t.key != "silver/flights"} == {
        k: ("record", []) for k in downstream(result, "silver/flights")
    }


def test_formatting_only_is_recorded_without_a_rebuild() -> None:
    current = edit("gold/route_performance", "SELECT", "-- reformatted\nSELECT")
    assert summary(plan(current)) == {"gold/route_performance": ("record", [])}


def test_a_removed_table_breaks_what_still_reads_it() -> None:
    current = {k: v for k, v in PROJECT.items() if k != "silver/airlines"}
    result = plan(current)
    assert summary(result)["silver/airlines"] == ("removed", [])
    assert downstream(result, "silver/airlines")["gold/carrier_monthly_performance"]
    assert summary(result)["gold/carrier_monthly_performance"] == ("affected", MONTHS)


def test_a_new_table_builds_the_months_its_upstream_has() -> None:
    deployed = deploy(PROJECT)
    del deployed["gold/carrier_monthly_performance"]
    result = plan(PROJECT, deployed)
    assert summary(result) == {"gold/carrier_monthly_performance": ("added", MONTHS)}


def test_a_table_built_before_its_upstream_was_republished_is_still_planned() -> None:
    """apply was stopped after rebuilding flights: what read the old flights stays planned."""
    current = edit("silver/flights", "arr_delay_min AS arr_delay", "arr_delay_min + 1 AS arr_delay")
    deployed = deploy(PROJECT)
    new = current["silver/flights"]
    deployed["silver/flights"] = {
        p: dataclasses.replace(d, source=new.digest) for p, d in deployed["silver/flights"].items()
    }
    known = {s.digest: s for s in (*PROJECT.values(), new)}
    result = make_plan(current, deployed, lambda ds: {d: known[d] for d in ds}, lambda b: MONTHS)
    assert summary(result)["gold/carrier_monthly_performance"] == ("affected", MONTHS)
    assert summary(result)["gold/airport_daily_weather"] == ("record", [])
    assert "silver/flights" not in summary(result)


def test_only_the_partitions_built_from_the_old_declaration_are_rebuilt() -> None:
    current = edit(
        "gold/carrier_monthly_performance",
        "avg(f.arr_delay) AS avg_arr_delay",
        "avg(f.arr_delay) + 1 AS avg_arr_delay",
    )
    deployed = deploy(PROJECT)
    key = "gold/carrier_monthly_performance"
    january = deployed[key]["2013-01"]
    deployed[key]["2013-01"] = dataclasses.replace(january, source=current[key].digest)
    assert summary(plan(current, deployed)) == {key: ("changed", ["2013-02"])}


def test_a_bronze_column_nobody_reads_is_recorded_only() -> None:
    bronze = PROJECT["bronze/planes"]
    current = {
        **PROJECT,
        "bronze/planes": dataclasses.replace(
            bronze, columns=(*bronze.columns, ("owner", "Nullable(String)"))
        ),
    }
    assert summary(plan(current)) == {"silver/planes": ("record", [])}


def test_a_change_to_which_rows_silver_rejects_rebuilds_every_reader() -> None:
    current = edit("silver/flights", "NOT BETWEEN 1 AND 31", "NOT BETWEEN 1 AND 30")
    result = plan(current)
    flights = result.get("silver/flights")
    assert flights is not None and flights.change is not None and flights.change.shape_changed
    readers = downstream(result, "silver/flights")
    assert readers and all(readers.values())  # every reader, every column
    assert {t.key: t.status for t in result.tables} == {
        "silver/flights": "changed",
        **dict.fromkeys(readers, "affected"),
    }


def test_a_column_a_reader_groups_and_joins_on_through_an_alias_breaks_all_of_it() -> None:
    """airport_daily_weather groups its weather CTE by `observed_date AS day`, joins on day."""
    current = edit(
        "silver/weather",
        "makeDate(year_num, month_num, day_num) AS observed_date",
        "toDate(time_hour_utc) AS observed_date",
    )
    result = plan(current)
    mart = result.get("gold/airport_daily_weather")
    assert mart is not None and mart.status == "affected" and mart.rebuild == MONTHS
    readers = downstream(result, "silver/weather")
    every = ("origin", "day", "flights", "avg_dep_delay", "avg_precip", "avg_visib",
             "avg_wind_speed")  # fmt: skip
    assert readers["gold/airport_daily_weather"] == every


def test_a_changeset_naming_a_mart_rebuilds_it() -> None:
    change = "\nALTER TABLE gold.route_performance ALTER COLUMN avg_distance TYPE numeric(10,2);"
    current = edit("gold/route_performance", "PRIMARY KEY", "PRIMARY KEY", field="ddl")
    source = current["gold/route_performance"]
    current["gold/route_performance"] = dataclasses.replace(source, ddl=source.ddl + change)
    assert summary(plan(current)) == {"gold/route_performance": ("changed", [WHOLE])}


def test_plan_diff_says_why_a_table_whose_columns_change_is_not_diffed() -> None:
    """Production's table cannot stage a new column before its changeset runs: the
    preview says so, and where to build it, instead of the engine's error."""
    from onering_assets.change.declared import TableChange
    from onering_assets.change.plan import TablePlan
    from onering_assets.change.preview import _new_shape

    new_column = TableChange("silver/flights", "changed", added=("delay_gain",))
    note = _new_shape(TablePlan("silver/flights", "changed", change=new_column))
    assert note.startswith("not diffed: its columns change (+delay_gain)")
    assert "onering apply --env dev" in note
    expression = TableChange("silver/flights", "changed", changed=("arr_delay",))
    assert _new_shape(TablePlan("silver/flights", "changed", change=expression)) == ""
    new_table = TableChange("silver/x", "added", added=("a",))
    assert _new_shape(TablePlan("silver/x", "added", change=new_table)) == ""
