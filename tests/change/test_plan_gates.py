"""`onering plan` says which builds `apply` would stop, before anything runs.

A copy of the project is migrated (every changeset run: Silver's tables exist in ClickHouse,
Gold's in Postgres, nothing built). Then a Silver table gains a column in its YAML and SQL
but no changeset, and a mart computes a new column no changeset declares: the plan names
both stops with the changeset to add, and `apply` refuses to run any of it. A changeset
mentioning the table only in a comment does not count; with the changesets added (not run,
names double-quoted), the Silver one is a note (the changeset runs before the build, which
checks again) and the Gold one is gone. A sort-key change (recorded, nothing rebuilt) and a
mixed-case mart column (Postgres folds it) are stops.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.change.cli import ok, onering
from tests.change.cli import project as project_env

SILVER, GOLD = "silver/airlines", "gold/route_performance"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_source) -> dict[str, str]:
    env = project_env(tmp_path_factory.mktemp("gates"), make_source())
    ok(onering(env, "migrate"))
    return env


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, path
    path.write_text(text.replace(old, new, 1))


def _changeset(folder: Path, name: str, label: str, sql: str) -> None:
    (folder / name).write_text(f"--liquibase formatted sql\n\n--changeset {label}\n{sql}\n")


def _plan(env: dict[str, str]) -> dict[str, dict]:
    return {t["key"]: t for t in json.loads(ok(onering(env, "plan", "--json")))["tables"]}


def test_plan_names_the_changesets_a_new_column_needs(project: dict[str, str]) -> None:
    platform = Path(project["ONERING_PLATFORM_DIR"])
    tables = platform / "analytics/clickhouse"
    assert _plan(project)[SILVER]["stops"] == [] and _plan(project)[GOLD]["stops"] == []

    _edit(tables / "silver/airlines.sql", "trimBoth(name) AS name,", "trimBoth(name) AS name,\n"
          "    length(trimBoth(name)) AS name_len,")  # fmt: skip
    _edit(tables / "silver/airlines.yml", "description: Full carrier name.}",
          "description: Full carrier name.}\n  - {name: name_len, type: UInt64}")  # fmt: skip
    _edit(tables / "gold/route_performance.sql", "AS avg_air_time",
          "AS avg_air_time,\n    max(distance) AS max_distance")  # fmt: skip
    printed = ok(onering(project, "plan"))
    assert (
        "apply would stop: silver.airlines: column `name_len` UInt64 is declared but missing"
        " (ALTER TABLE silver.airlines ADD COLUMN `name_len` UInt64 AFTER `name`)" in printed
    )
    assert (
        "apply would stop: the SQL computes max_distance, which no changeset of"
        " gold.route_performance declares" in printed
    )
    planned = _plan(project)
    assert len(planned[SILVER]["stops"]) == 1 and len(planned[GOLD]["stops"]) == 1
    untouched = [k for k, t in planned.items() if t["stops"] or t["notes"]]
    assert sorted(untouched) == [GOLD, SILVER]
    # apply refuses such a plan whole: nothing runs, not even the builds that would pass
    refused = onering(project, "apply")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"apply would stop at {SILVER}, {GOLD} (above): nothing was applied" in refused.stderr
    assert _plan(project) == planned
    assert "applying:" not in refused.stderr

    versioning = platform / "versioning"
    silver_log, gold_log = (
        versioning / "liquibase-clickhouse/changelog",
        versioning / "liquibase/changelog",
    )
    # a changeset that only mentions the table in a comment is not one that may fix it
    _changeset(silver_log, "003-len.sql", "me:len", "-- silver.airlines next\nSELECT 1;")
    assert _plan(project)[SILVER]["stops"] == planned[SILVER]["stops"]
    add_len = 'ALTER TABLE "silver"."airlines" ADD COLUMN `name_len` UInt64 AFTER `name`;'
    add_max = 'ALTER TABLE "gold"."route_performance" ADD COLUMN max_distance double precision;'
    _changeset(silver_log, "003-len.sql", "me:len", add_len)
    _changeset(gold_log, "003-max.sql", "me:max", add_max)
    planned = _plan(project)
    assert planned[SILVER]["stops"] == [] and planned[GOLD]["stops"] == []
    assert planned[SILVER]["notes"] == [
        "note: changeset me:len (003-len.sql) has not run: apply runs it before the build,"
        " which then checks again; today ClickHouse differs:",
        "note:   silver.airlines: column `name_len` UInt64 is declared but missing (ALTER TABLE"
        " silver.airlines ADD COLUMN `name_len` UInt64 AFTER `name`)",
    ]
    assert "max_distance" in planned[GOLD]["added_columns"]


def test_a_sort_key_change_is_a_stop_though_it_rebuilds_nothing(project: dict[str, str]) -> None:
    silver = Path(project["ONERING_PLATFORM_DIR"]) / "analytics/clickhouse/silver"
    _edit(silver / "planes.yml", "order_by: [tailnum]", "order_by: [tailnum, manufacturer]")
    try:
        stops = _plan(project)["silver/planes"]["stops"]
    finally:
        _edit(silver / "planes.yml", "order_by: [tailnum, manufacturer]", "order_by: [tailnum]")
    assert len(stops) == 1 and stops[0].startswith("silver.planes: keys differ"), stops


def test_a_mixed_case_mart_column_is_declared_as_postgres_folds_it(
    project: dict[str, str],
) -> None:
    """``ADD COLUMN DoubleFlights`` makes ``doubleflights`` in Postgres: a SQL computing
    ``DoubleFlights`` would fail the publish, so the plan names it."""
    platform = Path(project["ONERING_PLATFORM_DIR"])
    sql = platform / "analytics/clickhouse/gold/carrier_monthly_performance.sql"
    changeset = platform / "versioning/liquibase/changelog/004-double.sql"
    text = sql.read_text()
    sql.write_text(
        text.replace("    count() AS flights,", "    count() AS flights,\n    2 AS DoubleFlights,")
    )
    add = "ALTER TABLE gold.carrier_monthly_performance ADD COLUMN DoubleFlights bigint;"
    _changeset(changeset.parent, changeset.name, "me:double", add)
    try:
        stops = _plan(project)["gold/carrier_monthly_performance"]["stops"]
    finally:
        sql.write_text(text)
        changeset.unlink()
    assert any(s.startswith("the SQL computes DoubleFlights, which no changeset") for s in stops)
    assert any("declares doubleflights, which the SQL does not compute" in s for s in stops)


def test_a_declared_mart_column_the_sql_drops_is_a_stop(project: dict[str, str]) -> None:
    gold = Path(project["ONERING_PLATFORM_DIR"]) / "analytics/clickhouse/gold"
    _edit(gold / "route_performance.sql", "    avg(distance) AS avg_distance,\n", "")
    stops = _plan(project)[GOLD]["stops"]
    assert stops == [
        "gold.route_performance declares avg_distance, which the SQL does not compute"
        " (compute it, or a new changeset: ALTER TABLE gold.route_performance DROP COLUMN"
        " avg_distance)"
    ]
