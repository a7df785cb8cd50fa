"""`onering plan` and `onering apply` end to end, on real stores and an edited copy of platform/.

Bronze is ingested for January and February, then `apply` builds every declared table (a
fresh state plans them all as added); an unchanged project then plans nothing. The expression
of ``avg_arr_delay`` in ``gold/carrier_monthly_performance`` is edited and January is
materialized by hand: the plan rebuilds only February, apply runs exactly that (the deployed
records and the rows prove it), and the plan is empty again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.change.cli import ok, onering, rows
from tests.change.cli import project as project_env
from tests.conftest import gold_rows

MART = "gold/carrier_monthly_performance"
MONTHS = ["--from", "2013-01", "--to", "2013-02"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_source) -> dict[str, str]:
    env = project_env(tmp_path_factory.mktemp("apply"), make_source())
    ok(onering(env, "materialize", "-s", "group:bronze", *MONTHS))
    return env


def plan(env: dict[str, str]) -> dict[str, dict]:
    return {t["key"]: t for t in json.loads(ok(onering(env, "plan", "--json")))["tables"]}


def deployed(env: dict[str, str]) -> dict[tuple[str, str], str]:
    """(table, partition) -> the run that last published it."""
    query = "SELECT key, partition, run_id FROM onering.deployed FINAL WHERE NOT removed"
    return {(r["key"], r["partition"]): r["run_id"] for r in rows(env, query)}


def test_apply_builds_a_fresh_state_then_an_unchanged_project_plans_nothing(project) -> None:
    first = plan(project)
    assert {k: t["status"] for k, t in first.items()} == dict.fromkeys(first, "added")
    assert first[MART]["rebuild"] == ["2013-01", "2013-02"]
    assert len(first) == 11
    assert "Applied: the plan is now empty." in ok(onering(project, "apply"))
    again = ok(onering(project, "plan"))
    assert "No changes: the 11 declared tables match what is published." in again


def test_apply_rebuilds_only_the_planned_partitions(project) -> None:
    sql = Path(project["ONERING_PLATFORM_DIR"]) / "analytics/clickhouse/gold"
    path = sql / "carrier_monthly_performance.sql"
    text = path.read_text()
    assert "avg(f.arr_delay) AS avg_arr_delay" in text
    before = {(r[0], str(r[2])): r for r in gold_rows_of(project)}
    path.write_text(text.replace("avg(f.arr_delay) AS", "avg(f.arr_delay) + 10 AS"))
    key = 'key:"gold/carrier_monthly_performance"'
    ok(onering(project, "materialize", "-s", key, "-p", "2013-01"))

    planned = plan(project)
    assert list(planned) == [MART]
    assert (planned[MART]["status"], planned[MART]["changed_columns"]) == (
        "changed",
        ["avg_arr_delay"],
    )
    assert planned[MART]["rebuild"] == ["2013-02"]
    printed = ok(onering(project, "plan"))
    assert "changed: avg_arr_delay" in printed
    assert "rebuild: 2013-02 (1 month)" in printed

    runs = deployed(project)
    refused = onering(project, "apply")  # the mart's unit test still expects the old average
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "FAIL gold/carrier_monthly_performance" in refused.stderr
    assert "nothing was applied" in refused.stderr and deployed(project) == runs
    ok(onering(project, "apply", "--skip-tests"))
    after = deployed(project)
    rebuilt = {k for k in after if after[k] != runs[k]}
    assert rebuilt == {(MART, "2013-02")}
    assert set(after) == set(runs)
    rows = {(r[0], str(r[2])): r for r in gold_rows_of(project)}
    assert rows.keys() == before.keys()
    columns = gold_columns()
    arr = columns.index("avg_arr_delay")
    for key_, row in rows.items():
        assert row[arr] == pytest.approx(before[key_][arr] + 10)
        assert row[:arr] == before[key_][:arr]
    assert plan(project) == {}


def gold_columns() -> list[str]:
    from onering_assets.catalog import load_catalog

    return [c.name for c in load_catalog().sql_table("gold", "carrier_monthly_performance").columns]


def gold_rows_of(env: dict[str, str]) -> list[tuple]:
    from onering_assets.settings import Settings

    settings = Settings.from_env(env)
    return gold_rows(settings, "carrier_monthly_performance")


def test_plan_diff_counts_the_change_and_a_declared_limit_blocks_the_publish(project) -> None:
    """`plan --diff` stages and diffs without publishing; checks.max_moved_pct then stops
    `apply` from publishing a change that moves more rows than declared."""
    folder = Path(project["ONERING_PLATFORM_DIR"]) / "analytics/clickhouse/gold"
    sql, yml = (
        folder / "carrier_monthly_performance.sql",
        folder / "carrier_monthly_performance.yml",
    )
    sql.write_text(sql.read_text().replace("+ 10 AS avg_arr_delay", "+ 20 AS avg_arr_delay"))
    yml.write_text(yml.read_text().replace("checks:\n", "checks:\n  max_moved_pct: 5\n"))
    before, runs = gold_rows_of(project), deployed(project)
    arr = gold_columns().index("avg_arr_delay")
    with_delay = sum(1 for r in before if r[arr] is not None)

    body = json.loads(ok(onering(project, "plan", "--diff", "--json")))
    diff = body["diffs"][MART]
    assert (diff["old_rows"], diff["added"], diff["removed"], diff["changed"]) == (
        len(before),
        0,
        0,
        with_delay,
    )
    shift = diff["columns"]["avg_arr_delay"]
    assert shift["changed"] == with_delay
    assert shift["new"]["mean"] == pytest.approx(shift["old"]["mean"] + 10, abs=1e-5)
    assert set(diff["columns"]) == {"avg_arr_delay"}
    assert gold_rows_of(project) == before and deployed(project) == runs  # nothing published
    assert diff["data_diff_check"]["passed"] is False
    said = ok(onering(project, "plan", "--diff"))  # the limit apply would hit, said before it
    assert f"diff {MART}: " in said and "apply would stop here: check data_diff fails" in said
    assert "more than the declared 5 % (checks.max_moved_pct)" in said

    failed = onering(project, "apply", "--skip-tests")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "data_diff" in failed.stdout + failed.stderr
    assert gold_rows_of(project) == before and deployed(project) == runs
    assert MART in plan(project)


def test_plan_diff_stages_a_new_column_once_its_changeset_ran(project) -> None:
    """A Silver table gaining a column cannot be staged before its changeset runs, and a mart
    reading it is then not diffed either (computed from the published table, its diff would
    not be the change's); after `onering migrate` both are staged and diffed."""
    folder = Path(project["ONERING_PLATFORM_DIR"])
    sql, yml = (folder / "analytics/clickhouse/silver" / f"airlines.{x}" for x in ("sql", "yml"))
    new_sql = "upper(trimBoth(name)) AS name,\n    length(trimBoth(name)) AS name_len,"
    sql.write_text(sql.read_text().replace("trimBoth(name) AS name,", new_sql))
    new_column = "\n  - {name: name_len, type: UInt64}"
    yml.write_text(
        yml.read_text().replace("Full carrier name.}", "Full carrier name.}" + new_column)
    )
    before = deployed(project)

    diffs = json.loads(ok(onering(project, "plan", "--diff", "--json")))["diffs"]
    assert diffs["silver/airlines"]["note"].startswith(
        "not diffed: its columns change (+name_len), which production's table cannot stage"
    )
    assert diffs[MART] == {
        "note": "not diffed: it reads silver/airlines, which is not staged (see its line): "
        "computed from what is published, its diff would not be the change's"
    }

    changelog = folder / "versioning/liquibase-clickhouse/changelog/003-name-len.sql"
    changelog.write_text(
        "--liquibase formatted sql\n\n--changeset me:name-len\n"
        "ALTER TABLE silver.airlines ADD COLUMN `name_len` UInt64 AFTER `name`;\n"
    )
    ok(onering(project, "migrate"))
    diffs = json.loads(ok(onering(project, "plan", "--diff", "--json")))["diffs"]
    airlines = diffs["silver/airlines"]
    assert "note" not in airlines, airlines
    assert (airlines["added"], airlines["removed"]) == (0, 0)
    assert airlines["old_rows"] >= airlines["changed"] > 0  # names upper-cased
    assert {"name", "name_len"} <= set(airlines["columns"])
    assert "note" not in diffs[MART] and diffs[MART]["changed"] > 0  # carrier_name upper-cased
    assert deployed(project) == before  # nothing published
