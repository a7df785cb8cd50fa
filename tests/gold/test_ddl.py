"""Liquibase changelogs parsed and applied on the real embedded PostgreSQL 18."""

from pathlib import Path

import pytest

from onering_assets.errors import ConfigError
from onering_assets.gold.assets import LIQUIBASE_DIR
from onering_assets.gold.ddl import apply_changelogs, gold_columns, read_changesets
from onering_assets.resources import PostgresResource


def test_gold_columns_come_from_the_changelog_ddl() -> None:
    columns = gold_columns(LIQUIBASE_DIR)
    assert [(c.name, c.type) for c in columns["carrier_monthly_performance"]] == [
        ("carrier", "text"),
        ("carrier_name", "text"),
        ("month", "date"),
        ("flights", "bigint"),
        ("cancelled", "bigint"),
        ("avg_dep_delay", "double precision"),
        ("avg_arr_delay", "double precision"),
        ("pct_arr_delayed_15", "double precision"),
    ]


def test_changelog_must_be_formatted_sql(tmp_path: Path) -> None:
    path = tmp_path / "x.sql"
    path.write_text("CREATE TABLE gold.x (a int);\n")
    with pytest.raises(ConfigError, match="--liquibase formatted sql"):
        read_changesets(path)


def test_apply_is_idempotent_and_recorded_like_liquibase(tmp_path: Path) -> None:
    pg = PostgresResource(embedded_dir=str(tmp_path / "pg"))
    with pg.connect() as conn:
        first = apply_changelogs(conn, LIQUIBASE_DIR)
        second = apply_changelogs(conn, LIQUIBASE_DIR)
        logged = conn.execute(
            "SELECT id, author, exectype FROM public.databasechangelog ORDER BY orderexecuted"
        ).fetchall()
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'"
            " ORDER BY 1"
        ).fetchall()
    assert first[0] == "onering:001-gold-schema" and len(first) == 4
    assert second == []
    assert [r[0] for r in logged] == [f.split(":", 1)[1] for f in first]
    assert {r[2] for r in logged} == {"EXECUTED"}
    assert [t[0] for t in tables] == [
        "airport_daily_weather",
        "carrier_monthly_performance",
        "route_performance",
    ]
