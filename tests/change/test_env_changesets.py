"""A change that needs changesets, built in an environment and promoted, end to end.

Production is built for January. A new Silver column (``flights.sched_dep_hour``, changeset
``003`` of Silver's changelog) and a new Gold column (``carrier_monthly_performance.
max_dep_delay``, an ``ALTER TABLE`` changeset of Gold's) are declared. ``onering apply --env
dev`` runs both changesets on ``silver__dev``/``gold__dev`` only, recorded in the
environment's ``_changelog``: production's tables keep their columns and rows, its
histories still list both as pending, and production still plans the change. ``onering env
promote dev`` migrates production first, then swaps the environment's partitions in:
production has both columns, filled, nothing is pending and nothing is planned.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from onering_assets.change.env_ddl import _todo, in_env
from onering_assets.changelogs.formatted import read_changelog
from onering_assets.errors import ChangelogError
from tests.change.cli import ok, onering, rows
from tests.change.cli import project as project_env

SQL = "analytics/clickhouse"
SILVER_CHANGESET = (
    "--liquibase formatted sql\n\n--changeset you:003-flights-sched-dep-hour\n"
    "ALTER TABLE silver.flights ADD COLUMN IF NOT EXISTS `sched_dep_hour` Nullable(UInt16) "
    "AFTER `cancelled`;\n"
)
GOLD_CHANGESET = (
    "--liquibase formatted sql\n\n--changeset you:003-carrier-max-dep-delay\n"
    "ALTER TABLE gold.carrier_monthly_performance ADD COLUMN max_dep_delay double precision;\n"
)
SILVER_COLUMNS = (
    "SELECT database AS d, name FROM system.columns WHERE table = 'flights' "
    "AND name = 'sched_dep_hour' ORDER BY d"
)
GOLD_COLUMNS = (
    "SELECT table_schema AS s FROM information_schema.columns "
    "WHERE table_name = 'carrier_monthly_performance' AND column_name = 'max_dep_delay' "
    "ORDER BY s"
)
PROD_SILVER = "SELECT count() AS n, sum(cityHash64(*)) AS h FROM silver.flights"
PROD_GOLD = "SELECT * FROM gold.carrier_monthly_performance ORDER BY 1, 2"


def edit(platform: Path, path: str, old: str, new: str) -> None:
    file = platform / SQL / path
    assert old in file.read_text()
    file.write_text(file.read_text().replace(old, new, 1))


def declare_the_change(platform: Path) -> None:
    edit(
        platform,
        "silver/flights.sql",
        "    dep_time_num IS NULL AS cancelled,\n",
        "    dep_time_num IS NULL AS cancelled,\n"
        "    intDiv(sched_dep_time_num, 100) AS sched_dep_hour,\n",
    )
    edit(
        platform,
        "silver/flights.yml",
        "(no dep_time).}\n",
        "(no dep_time).}\n"
        "  - {name: sched_dep_hour, type: Nullable(UInt16), description: Scheduled hour.}\n",
    )
    edit(
        platform,
        "gold/carrier_monthly_performance.sql",
        "AS pct_arr_delayed_15\n",
        "AS pct_arr_delayed_15,\n    max(f.dep_delay) AS max_dep_delay\n",
    )
    edit(
        platform,
        "gold/carrier_monthly_performance.yml",
        "non-null arr_delay.\n",
        "non-null arr_delay.\n  max_dep_delay: Longest departure delay in minutes.\n",
    )
    versioning = platform / "versioning"
    silver = versioning / "liquibase-clickhouse" / "changelog" / "003-flights-sched-dep-hour.sql"
    silver.write_text(SILVER_CHANGESET)
    gold = versioning / "liquibase" / "changelog" / "003-carrier-max-dep-delay.sql"
    gold.write_text(GOLD_CHANGESET)


def planned(env: dict[str, str], *args: str) -> set[str]:
    plan = json.loads(ok(onering(env, "plan", "--json", *args)))
    return {t["key"] for t in plan["tables"] if t["key"].split("/")[0] in ("silver", "gold")}


def pending(env: dict[str, str]) -> str:
    return ok(onering(env, "migrate", "--status"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_source) -> dict[str, str]:
    env = project_env(tmp_path_factory.mktemp("env_changesets"), make_source())
    medallion = "group:bronze or group:silver or group:gold"
    ok(onering(env, "materialize", "-s", medallion, "--from", "2013-01", "--to", "2013-01"))
    return env


def test_changesets_run_in_the_environment_only_until_it_is_promoted(project) -> None:
    before = {"silver": rows(project, PROD_SILVER), "gold": rows(project, PROD_GOLD, "gold")}
    declare_the_change(Path(project["ONERING_PLATFORM_DIR"]))
    assert planned(project) == planned(project, "--env", "dev") != set()

    applied = onering(project, "apply", "--env", "dev", "--skip-tests")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert [r["d"] for r in rows(project, SILVER_COLUMNS)] == ["silver__dev"]
    assert [r["s"] for r in rows(project, GOLD_COLUMNS, "gold")] == ["gold__dev"]
    labels = {r["id"] for r in rows(project, "SELECT id FROM silver__dev._changelog")}
    assert labels == {"003-flights-sched-dep-hour"}
    status = pending(project)  # production's histories: both still pending
    assert "you:003-flights-sched-dep-hour" in status and "you:003-carrier-max-dep-delay" in status
    assert {
        "silver": rows(project, PROD_SILVER),
        "gold": rows(project, PROD_GOLD, "gold"),
    } == before
    assert planned(project, "--env", "dev") == set()
    assert "silver/flights" in planned(project)  # production still plans the change
    with dg.DagsterInstance.from_config(project["DAGSTER_HOME"]) as instance:  # production's
        assert not instance.get_runs(dg.RunsFilter(tags={"onering/env": "dev"}))
    home = Path(project["ONERING_STATE_DIR"]) / "envs" / "dev" / "dagster"
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the environment's own
        assert instance.get_runs(dg.RunsFilter(tags={"onering/env": "dev"}))

    promoted = ok(onering(project, "env", "promote", "dev"))
    assert "promoted silver/flights: 2013-01" in promoted
    assert "pending 0" in pending(project) and "you:003" not in pending(project)
    assert [r["d"] for r in rows(project, SILVER_COLUMNS)] == ["silver", "silver__dev"]
    assert [r["s"] for r in rows(project, GOLD_COLUMNS, "gold")] == ["gold", "gold__dev"]
    filled = rows(project, "SELECT count() AS n, count(sched_dep_hour) AS k FROM silver.flights")
    assert filled[0]["n"] == filled[0]["k"] == before["silver"][0]["n"]  # type: ignore[index]
    marts = rows(
        project, "SELECT count(max_dep_delay) AS k FROM gold.carrier_monthly_performance", "gold"
    )
    assert marts[0]["k"] == len(before["gold"])  # type: ignore[arg-type]
    assert planned(project) == set()


def test_qualifiers_are_renamed_outside_strings_and_comments() -> None:
    sql = (
        "-- silver.flights stays in a comment\n"
        "ALTER TABLE silver.flights ADD COLUMN x String DEFAULT 'silver.x';\n"
        "ALTER TABLE `silver`.`weather` ADD COLUMN y UInt8; /* silver.weather */\n"
        'CREATE TABLE "silver" . t AS silver.t2; SELECT silverx.a, db.silver.b'
    )
    assert in_env(sql, "silver", "dev") == (
        "-- silver.flights stays in a comment\n"
        "ALTER TABLE silver__dev.flights ADD COLUMN x String DEFAULT 'silver.x';\n"
        "ALTER TABLE `silver__dev`.`weather` ADD COLUMN y UInt8; /* silver.weather */\n"
        'CREATE TABLE "silver__dev" . t AS silver__dev.t2; SELECT silverx.a, db.silver.b'
    )


def test_a_changeset_the_environment_ran_and_that_was_edited_since_is_refused(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "changelog"
    folder.mkdir()
    (folder / "003.sql").write_text(SILVER_CHANGESET)
    (ran,) = read_changelog(tmp_path)
    done = {(ran.id, ran.author, ran.filename): ran.checksum}
    assert _todo([ran], done, "dev") == []  # ran already: not again
    (folder / "003.sql").write_text(SILVER_CHANGESET.replace("UInt16", "UInt32"))
    (edited,) = read_changelog(tmp_path)
    with pytest.raises(ChangelogError, match="applied to environment 'dev' and edited since"):
        _todo([edited], done, "dev")
    assert _todo([edited], {}, "dev") == [edited]  # a new environment runs it


@pytest.mark.parametrize(
    ("sql", "schema", "dialect", "why"),
    [
        (
            "CREATE TABLE IF NOT EXISTS default.backup ENGINE = MergeTree ORDER BY tuple() "
            "AS SELECT * FROM silver.flights;",
            "silver",
            "clickhouse",
            "it names default.backup",
        ),
        (
            "SET search_path TO gold; ALTER TABLE carrier_monthly_performance ADD COLUMN x int;",
            "gold",
            "postgres",
            "it runs 'SET search_path",
        ),
        (
            "CREATE SCHEMA IF NOT EXISTS gold_archive; "
            "CREATE TABLE gold_archive.t AS SELECT * FROM gold.carrier_monthly_performance;",
            "gold",
            "postgres",
            "it creates gold_archive",
        ),
    ],
)
def test_a_changeset_reaching_outside_the_environment_is_refused(
    sql: str, schema: str, dialect: str, why: str
) -> None:
    """An environment never writes production: a statement outside its own schema stops
    the changeset before anything of it runs."""
    from onering_assets.change.env_ddl import confined
    from onering_assets.changelogs.formatted import Changeset

    changeset = Changeset("you", "003", "changelog/003.sql", sql, Path("003.sql"))
    with pytest.raises(ChangelogError, match=f"cannot run in environment 'dev': {why}"):
        confined(changeset, schema, "dev", dialect)
    inside = Changeset("you", "004", "changelog/004.sql", SILVER_CHANGESET, Path("004.sql"))
    assert "ALTER TABLE silver__dev.flights" in confined(inside, "silver", "dev", "clickhouse")
