"""Liquibase changelogs parsed, checksummed and applied (on the real embedded PostgreSQL 18).

The checksums below are the values the real Liquibase 4.3.3 wrote for these changesets
(``liquibase update`` from platform/versioning/liquibase); tests/gold/test_liquibase.py
checks the same against a live Liquibase run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from onering_assets.changelogs.formatted import changeset_checksum
from onering_assets.changelogs.history import Ran, legacy_checksum, plan_changesets
from onering_assets.errors import ChangelogError, ConfigError, StoreBusyError
from onering_assets.gold.assets import LIQUIBASE_DIR
from onering_assets.gold.ddl import apply_changelogs, gold_columns, read_changelog, read_changesets
from onering_assets.resources import PostgresResource
from onering_assets.resources.postgres import stop_embedded

WRITTEN_BY_LIQUIBASE_4_3_3 = {
    "001-gold-schema": "8:a4252d03b45cf4d0336dbb4818c08d70",
    "002-carrier-monthly-performance": "8:2c430a1a7d21d3b26c04d67e0f8bb0b7",
    "003-route-performance": "8:12ec754323ab040106b04dcff6b7ff17",
    "004-airport-daily-weather": "8:ee746f221ff6feb5c4c64067212d49b6",
}
SCHEMA_FILE = "changelog/001-gold-schema.sql"


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


def test_a_later_alter_table_changeset_adds_drops_retypes_and_renames_columns(
    tmp_path: Path,
) -> None:
    """A mart's new column is a new changeset (an applied one is never edited): the declared
    columns are what the changesets leave, in order; other schemas are not gold's."""
    folder = tmp_path / "changelog"
    folder.mkdir()
    (folder / "001.sql").write_text(
        "--liquibase formatted sql\n\n--changeset me:1\n"
        "CREATE TABLE gold.t (a int NOT NULL, b text, c numeric(10,2));\n"
    )
    (folder / "002.sql").write_text(
        "--liquibase formatted sql\n\n--changeset me:2\n"
        "ALTER TABLE gold.t ADD COLUMN d double precision, DROP COLUMN b;\n"
        "ALTER TABLE gold.t ALTER COLUMN a TYPE bigint;\n"
        "ALTER TABLE gold.t RENAME COLUMN c TO cc;\n"
        "ALTER TABLE other.t ADD COLUMN z int;\n"
        "ALTER TABLE gold.t ADD COLUMN IF NOT EXISTS d int;\n"
        "ALTER TABLE GOLD.t ADD COLUMN e integer;\n"
        "ALTER TABLE gold.t RENAME e TO ee;\n"  # COLUMN is optional in Postgres
    )
    columns = gold_columns(tmp_path)["t"]
    assert [(c.name, c.type) for c in columns] == [
        ("a", "bigint"),
        ("cc", "numeric"),  # as information_schema names it
        ("d", "double precision"),
        ("ee", "integer"),
    ]


def test_a_renamed_gold_table_keeps_its_declared_columns(tmp_path: Path) -> None:
    folder = tmp_path / "changelog"
    folder.mkdir()
    (folder / "001.sql").write_text(
        "--liquibase formatted sql\n\n--changeset me:1\n"
        "CREATE TABLE gold.t (a int NOT NULL);\n"
        "ALTER TABLE gold.t RENAME TO u;\n"
        "ALTER TABLE gold.u RENAME a TO b;\n"
    )
    assert [(c.name, c.type) for c in gold_columns(tmp_path)["u"]] == [("b", "integer")]
    assert "t" not in gold_columns(tmp_path)


def test_changelog_must_be_formatted_sql(tmp_path: Path) -> None:
    path = tmp_path / "x.sql"
    path.write_text("CREATE TABLE gold.x (a int);\n")
    with pytest.raises(ConfigError, match="--liquibase formatted sql"):
        read_changesets(path)


def test_identity_and_checksum_are_the_ones_liquibase_records() -> None:
    recorded = {
        cs.id: (cs.author, cs.filename, cs.checksum, cs.comments)
        for cs in read_changelog(LIQUIBASE_DIR)
    }
    for id_, checksum in WRITTEN_BY_LIQUIBASE_4_3_3.items():
        assert recorded[id_][:3] == ("onering", SCHEMA_FILE, checksum)
    assert recorded["001-gold-schema"][3] == (
        "The gold schema holds curated marts for BI and features."
    )


@pytest.mark.parametrize(
    ("variant", "same"),
    [
        ("CREATE SCHEMA IF NOT EXISTS gold;", True),
        ("  CREATE   SCHEMA IF NOT EXISTS\r\n\tgold;\n\n", True),
        ("CREATE SCHEMA IF NOT EXISTS Gold;", False),
        ("CREATE SCHEMA IF NOT EXISTS gold ;", False),
    ],
)
def test_checksum_ignores_whitespace_only(variant: str, same: bool) -> None:
    reference = WRITTEN_BY_LIQUIBASE_4_3_3["001-gold-schema"]
    assert (changeset_checksum(variant, None, True, True) == reference) is same


def _changelog(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "liquibase"
    (folder / "changelog").mkdir(parents=True)
    (folder / "changelog" / "001-x.sql").write_text("--liquibase formatted sql\n\n" + body)
    return folder


@pytest.mark.parametrize("attribute", ["runOnChange:true", "runAlways:true", "context:dev"])
def test_unsupported_changeset_attributes_are_refused(tmp_path: Path, attribute: str) -> None:
    folder = _changelog(tmp_path, f"--changeset a:1 {attribute}\nSELECT 1;\n")
    with pytest.raises(ConfigError, match=f"uses {attribute.split(':')[0]}, which"):
        read_changelog(folder)


def test_valid_checksum_lines_accept_an_edit_as_liquibase_does(tmp_path: Path) -> None:
    folder = _changelog(tmp_path, "--changeset a:1\n--validCheckSum: ANY\nSELECT 2;\n")
    (changeset,) = read_changelog(folder)
    row = Ran("1", "a", "changelog/001-x.sql", "8:0123456789abcdef0123456789abcdef", "")
    assert plan_changesets([changeset], [row]).upgrades == []


def test_recorded_file_name_follows_liquibase(tmp_path: Path) -> None:
    folder = _changelog(tmp_path, "--changeset a:1\nSELECT 1;\n")
    (sub := folder / "changelog" / "sub").mkdir()
    (sub / "x.sql").write_text(
        "--liquibase formatted sql logicalFilePath:db/x.sql\n--changeset a:2\nSELECT 2;\n"
    )
    assert [cs.filename for cs in read_changelog(folder)] == ["changelog/001-x.sql", "db/x.sql"]
    (folder / "changelog" / "002-y.yaml").write_text("databaseChangeLog: []\n")
    with pytest.raises(ConfigError, match="formatted-SQL"):
        read_changelog(folder)


def _row(filename: str, md5sum: str | None, comments: str | None = None) -> Ran:
    return Ran("003-route-performance", "onering", filename, md5sum, comments)


def _route() -> list:
    return [cs for cs in read_changelog(LIQUIBASE_DIR) if cs.id == "003-route-performance"]


def test_an_edited_applied_changeset_is_refused_naming_file_and_changeset() -> None:
    with pytest.raises(ChangelogError) as refused:
        plan_changesets(_route(), [_row(SCHEMA_FILE, "8:0123456789abcdef0123456789abcdef")])
    message = str(refused.value)
    assert SCHEMA_FILE in message and "onering:003-route-performance" in message
    assert "add a new changeset" in message and "runOnChange" in message


@pytest.mark.parametrize(
    "row",
    [
        _row(SCHEMA_FILE, None),  # Liquibase fills a NULL md5sum in; so does OneRing
        _row(SCHEMA_FILE, "7:0123456789abcdef0123456789abcdef"),  # an older algorithm's
        _row("001-gold-schema.sql", None, "legacy"),  # the earlier applier's bare file name
    ],
)
def test_rows_without_a_current_checksum_are_upgraded_not_refused(row: Ran) -> None:
    plan = plan_changesets(_route(), [row])
    assert plan.pending == [] and [(r, cs.id) for r, cs in plan.upgrades] == [
        (row, "003-route-performance")
    ]


def test_the_earlier_applier_sha256_still_catches_an_edit() -> None:
    (route,) = _route()
    good = _row("001-gold-schema.sql", None, legacy_checksum(route))
    assert len(plan_changesets([route], [good]).upgrades) == 1
    edited = _row("001-gold-schema.sql", None, "sha256:" + "0" * 32)
    with pytest.raises(ChangelogError, match="earlier OneRing"):
        plan_changesets([route], [edited])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    # Outside pytest's base temp folder: other pytest processes reset its mode to 0700,
    # which locks out the embedded server's own system user.
    folder = Path(tempfile.mkdtemp(prefix="onering-ddl-"))
    folder.chmod(0o755)
    try:
        yield PostgresResource(embedded_dir=str(folder / "pg")).conninfo()
    finally:
        stop_embedded(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


def _database(conninfo: str, name: str) -> str:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(conninfo, dbname=name)


def test_apply_is_idempotent_and_recorded_like_liquibase(server: str) -> None:
    with psycopg.connect(_database(server, "idempotent")) as conn:
        first = apply_changelogs(conn, LIQUIBASE_DIR)
        second = apply_changelogs(conn, LIQUIBASE_DIR)
        logged = conn.execute(
            "SELECT id, filename, orderexecuted, exectype, md5sum, liquibase"
            " FROM public.databasechangelog ORDER BY orderexecuted"
        ).fetchall()
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'"
            " ORDER BY 1"
        ).fetchall()
    assert first[0] == "onering:001-gold-schema" and len(first) == len(logged) >= 4
    assert second == []
    assert [r[0] for r in logged] == [f.split(":", 1)[1] for f in first]
    assert [r[2] for r in logged] == list(range(1, len(first) + 1))
    assert {r[3] for r in logged} == {"EXECUTED"} and {r[5] for r in logged} == {"4.3.3"}
    for id_, checksum in WRITTEN_BY_LIQUIBASE_4_3_3.items():
        assert (id_, SCHEMA_FILE, checksum) in {(r[0], r[1], r[4]) for r in logged}
    assert [t[0] for t in tables] == [
        "airport_daily_weather",
        "carrier_monthly_performance",
        "route_performance",
    ]


def test_a_failing_changeset_applies_nothing_of_its_run(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "liquibase"
    shutil.copytree(LIQUIBASE_DIR, folder)
    (folder / "changelog" / "999-broken.sql").write_text(
        "--liquibase formatted sql\n--changeset onering:999-broken\nSELECT * FROM gold.nope;\n"
    )
    with psycopg.connect(_database(server, "broken")) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            apply_changelogs(conn, folder)
        left = conn.execute(
            "SELECT to_regclass('public.databasechangelog'), to_regnamespace('gold')"
        ).fetchone()
    assert left == (None, None)


def test_a_running_liquibase_holds_onering_off(server: str) -> None:
    dsn = _database(server, "liquibase_busy")
    with psycopg.connect(dsn) as conn:
        apply_changelogs(conn, LIQUIBASE_DIR)
        # What Liquibase's LockService writes while it migrates.
        conn.execute(
            "UPDATE public.databasechangeloglock SET locked = true, lockgranted = now(),"
            " lockedby = 'ci-runner (10.0.0.7)' WHERE id = 1"
        )
        conn.execute("DELETE FROM public.databasechangelog WHERE orderexecuted > 1")
    with psycopg.connect(dsn) as conn, pytest.raises(StoreBusyError, match="ci-runner"):
        apply_changelogs(conn, LIQUIBASE_DIR)
    with psycopg.connect(dsn) as conn:
        count = conn.execute("SELECT count(*) FROM public.databasechangelog").fetchone()
    assert count == (1,)


def test_a_renamed_marts_changesets_follow_it_and_quoted_names_count(tmp_path: Path) -> None:
    """The plan reads a mart's changesets by name: a renamed mart keeps its history, and
    ``"gold"."t"`` names it as ``gold.t`` does; unquoted names fold to lower case."""
    from onering_assets.gold.ddl import declared_columns, gold_changesets

    folder = tmp_path / "changelog"
    folder.mkdir()
    (folder / "001.sql").write_text(
        "--liquibase formatted sql\n\n--changeset me:1\nCREATE TABLE gold.t (a int);\n"
        "\n--changeset me:2\nALTER TABLE gold.t RENAME TO u;\n"
        '\n--changeset me:3\nALTER TABLE "gold"."u" ADD COLUMN MixedCase bigint;\n'
    )
    texts = gold_changesets(tmp_path)
    assert [(c.name, c.type) for c in declared_columns(texts["u"])["u"]] == [
        ("a", "integer"),
        ("mixedcase", "bigint"),
    ]
