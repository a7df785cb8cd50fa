"""`onering env create | list | drop` on real stores: zero-copy, production left byte-identical.

January and February are built, then an environment is created: every Silver table is in
``silver__dev`` with production's rows, its parts hard-linked (the store grows by metadata
only), every mart readable in ``gold__dev``; production's rows (a hash of every byte of every
row per Silver table, every Gold row) are exactly as before, and stay so when the
environment is dropped. A bad or taken
name is refused with exit 2, an unknown one with exit 3.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.change.cli import ok, onering, rows

MEDALLION = "group:bronze or group:silver or group:gold"
TABLES = (
    "SELECT name FROM system.tables WHERE database = 'silver' "
    "AND engine LIKE '%MergeTree' ORDER BY name"
)


def disk_bytes(folder: str) -> int:
    """Bytes on disk, each hard-linked file once (as du counts)."""
    out = subprocess.run(["du", "-s", "-B1", folder], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def contents(env: dict[str, str], database: str, tables: list[str]) -> dict[str, dict]:
    """Per table, its rows and a hash of every byte of every row (order-independent)."""
    query = " UNION ALL ".join(
        f"SELECT '{t}' AS t, count() AS n, sum(cityHash64(*)) AS h FROM {database}.{t}"
        for t in tables
    )
    return {r["t"]: {"n": r["n"], "h": r["h"]} for r in rows(env, query)}


def production(env: dict[str, str]) -> dict[str, object]:
    marts = ("airport_daily_weather", "carrier_monthly_performance", "route_performance")
    tables = [r["name"] for r in rows(env, TABLES)]
    return {
        "silver": contents(env, "silver", tables),
        "gold": {m: rows(env, f"SELECT * FROM gold.{m} ORDER BY 1, 2", "gold") for m in marts},
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_source) -> dict[str, str]:
    state = tmp_path_factory.mktemp("envs") / "state"
    env = {
        **os.environ,
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(make_source()),
        "DAGSTER_HOME": str(state / "dagster"),
        "COLUMNS": "400",
    }
    ok(onering(env, "materialize", "-s", MEDALLION, "--from", "2013-01", "--to", "2013-02"))
    return env


def test_an_environment_shares_production_and_leaves_it_byte_identical(built) -> None:
    before = production(built)
    store = os.path.join(built["ONERING_STATE_DIR"], "clickhouse")
    size = disk_bytes(store)
    created = ok(onering(built, "env", "create", "dev"))
    assert "Created dev" in created and "hard-linked" in created
    assert production(built) == before
    listed = ok(onering(built, "env", "list"))
    assert listed.startswith("dev  created ") and "changed nothing since" in listed
    assert len(listed.splitlines()) == 1

    silver = before["silver"]
    assert contents(built, "silver__dev", sorted(silver)) == silver  # type: ignore[arg-type]
    for mart, prod_rows in before["gold"].items():  # type: ignore[union-attr]
        assert rows(built, f"SELECT * FROM gold__dev.{mart} ORDER BY 1, 2", "gold") == prod_rows
    # Hard links: the environment adds directories and metadata, never a second copy of the
    # parts (a copy would add at least their bytes; bench/envs.py measures it at 10x).
    parts = rows(built, "SELECT sum(bytes_on_disk) AS b FROM system.parts "
                        "WHERE database = 'silver' AND active")[0]["b"]  # fmt: skip
    added = disk_bytes(store) - size
    assert added < 0.25 * int(parts), (added, parts)

    assert "Dropped dev." in ok(onering(built, "env", "drop", "dev"))
    assert production(built) == before
    assert rows(built, "SELECT count() AS n FROM system.databases WHERE name = 'silver__dev'") == [
        {"n": 0}
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("env", "create", "Dev"), 2, "is not an environment name"),
        (("env", "create", "prod"), 2, "is not an environment name"),
        (("env", "create", "a__b"), 2, "is not an environment name"),
        (("env", "create", "nl\n"), 2, "is not an environment name"),
        (("env", "drop", "nope"), 3, "No environment 'nope'"),
    ],
)
def test_bad_names_are_refused(built, args: tuple[str, ...], code: int, message: str) -> None:
    result = onering(built, *args)
    assert result.returncode == code and message in result.stderr, result.stderr


def test_a_taken_name_is_refused_and_the_existing_environment_kept(built) -> None:
    ok(onering(built, "env", "create", "twice"))
    again = onering(built, "env", "create", "twice")
    assert again.returncode == 2 and "exists" in again.stderr, again.stderr
    assert "twice" in ok(onering(built, "env", "list")).split()
    ok(onering(built, "env", "drop", "twice"))


FAILING_CREATE = """
import json
from onering_assets.change import envs
from onering_assets.definitions import resources_for
from onering_assets.settings import Settings

resources = resources_for(Settings.from_env())
ch = resources["clickhouse"]
client = ch.get_client()


class Failing:  # the second connection: its third statement fails
    def __init__(self):
        self.inner, self.ran = ch.another_connection(), 0

    def command(self, statement):
        self.ran += 1
        if self.ran == 3:
            raise RuntimeError("planted: the second connection failed")
        self.inner.command(statement)

    def close(self):
        self.inner.close()


with resources["postgres"].connect() as conn:
    try:
        envs.create(client, conn, "broken", Failing)
        found = {"raised": None}
    except RuntimeError as e:
        found = {
            "raised": str(e),
            "environments": envs.environments(client),
            "databases": client.query("SELECT count() FROM system.databases "
                                      "WHERE name = 'silver__broken'").result_rows[0][0],
            "schemas": conn.execute("SELECT count(*) FROM information_schema.schemata "
                                    "WHERE schema_name = 'gold__broken'").fetchone()[0],
            "records": client.query("SELECT count() FROM onering.deployed FINAL WHERE "
                                    "startsWith(env, 'broken')").result_rows[0][0],
        }
ch.close()
print(json.dumps(found))
"""


def test_a_create_failing_half_way_leaves_nothing_and_production_as_it_was(built) -> None:
    """Silver's tables are cloned by two connections at once, Gold's marts copied beside
    them: when one connection fails, everything already made (tables, marts, records) is
    removed, and production is untouched."""
    import json
    import sys

    before = production(built)
    done = subprocess.run(
        [sys.executable, "-c", FAILING_CREATE], env=built, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found == {
        "raised": "planted: the second connection failed",
        "environments": [],
        "databases": 0,
        "schemas": 0,
        "records": 0,
    }
    assert production(built) == before


KILLED_CREATE = (
    FAILING_CREATE.replace(
        'raise RuntimeError("planted: the second connection failed")', "os._exit(9)"
    )
    .replace("import json\n", "import json\nimport os\n")
    .replace('"broken"', '"killed"')
)


def test_a_create_killed_half_way_is_incomplete_until_dropped(built) -> None:
    """A create killed before it finished is listed as incomplete, refused by plan, apply
    and promote, and `env drop` removes it; a Gold schema a drop killed half-way left is a
    leftover `env drop` removes, so the name can be created again."""
    import sys

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_CREATE], env=built, capture_output=True, text=True
    )
    assert killed.returncode == 9, killed.stderr
    listed = ok(onering(built, "env", "list"))
    assert "killed  incomplete: its creation was stopped; `onering env drop killed`" in listed
    for args in (("plan", "--env", "killed"), ("apply", "--env", "killed", "--skip-tests"),
                 ("env", "promote", "killed")):  # fmt: skip
        refused = onering(built, *args)
        assert refused.returncode == 2 and "is incomplete" in refused.stderr, (args, refused)
    again = onering(built, "env", "create", "killed")
    assert again.returncode == 2 and "its creation was stopped" in again.stderr
    assert "Dropped killed." in ok(onering(built, "env", "drop", "killed"))

    ok(onering(built, "env", "create", "orphan"))
    drop_silver = (  # what a drop of the earlier order (Silver first) killed half-way left
        "from onering_assets.definitions import resources_for\n"
        "from onering_assets.settings import Settings\n"
        "ch = resources_for(Settings.from_env())['clickhouse']\n"
        "ch.get_client().command('DROP DATABASE silver__orphan SYNC')\n"
        "ch.close()\n"
    )
    subprocess.run([sys.executable, "-c", drop_silver], env=built, check=True)
    assert "orphan" not in ok(onering(built, "env", "list"))
    dropped = ok(onering(built, "env", "drop", "orphan"))  # its Gold schema and records remain
    assert "Removed schema gold__orphan." in dropped, dropped
    assert "Created orphan" in ok(onering(built, "env", "create", "orphan"))
    ok(onering(built, "env", "drop", "orphan"))
