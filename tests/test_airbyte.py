"""Airbyte connections on real connectors from PyPI, run by PyAirbyte through Dagster Pipes.

``faker`` (source-faker, seeded) and ``landed_airlines`` (source-file on the landed
airlines.csv) run for real in their own environments, offline (no registry lookup); a
config the connector refuses fails in one line with the connector's reason; a broken
declaration is refused when definitions load.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from onering_assets.airbyte import assets as airbyte_assets
from onering_assets.airbyte import connections
from onering_assets.airbyte.connections import CONNECTIONS_DIR, load_connections, parse
from onering_assets.definitions import build_definitions
from onering_assets.errors import ConfigError
from onering_assets.runner import check_keys, execute
from onering_assets.settings import Settings
from tests.conftest import settings_for

ENV = airbyte_assets.AirbyteResource()
pytestmark = pytest.mark.skipif(
    not Path(ENV.python).is_file(),
    reason=f"the Airbyte environment is missing ({ENV.python}); `make setup` creates it",
)
FAKER = {dg.AssetKey(["airbyte", "faker_users"]), dg.AssetKey(["airbyte", "faker_products"])}
AIRLINES = dg.AssetKey(["airbyte", "landed_airlines_airlines"])
FAKER_YML = "source: source-faker\nconfig: {}\nstreams: [users]\n"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, make_source) -> Iterator[Settings]:
    yield settings_for(tmp_path_factory.mktemp("airbyte") / "state", make_source())


def landed(settings: Settings, key: dg.AssetKey) -> list[dict]:
    return pq.read_table(settings.lake_dir / "airbyte" / key.path[1] / "data.parquet").to_pylist()


def test_the_declared_connections_run_for_real_and_land_every_record(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    summary = execute(
        build_definitions(settings), instance, assets=FAKER | {AIRLINES}, progress=False
    )
    assert summary.success, summary.failures
    assert all(passed for _, _, passed, _ in summary.checks) and len(summary.checks) == 3

    users = landed(settings, dg.AssetKey(["airbyte", "faker_users"]))
    assert len(users) == 200 and len({u["id"] for u in users}) == 200  # faker.yml: count 200
    assert {"email", "_airbyte_raw_id", "_airbyte_extracted_at"} <= users[0].keys()
    # source-file read the landed airlines.csv: the same carriers and names.
    source = settings.source_dir
    assert source is not None
    with (source / "airlines.csv").open(newline="") as f:
        expected = {(r["carrier"], r["name"]) for r in csv.DictReader(f)}
    got = {(r["carrier"], r["name"]) for r in landed(settings, AIRLINES)}
    assert got == expected and len(got) == 16

    event = instance.get_latest_materialization_event(AIRLINES)
    assert event is not None and event.asset_materialization is not None
    meta = event.asset_materialization.metadata
    assert meta["airbyte_records"].value == 16 and meta["airbyte_source"].value == "source-file"

    # Checks alone read the published files.
    defs = build_definitions(settings)
    alone = execute(defs, instance, checks=check_keys(defs, FAKER | {AIRLINES}), progress=False)
    assert [c[2] for c in alone.checks] == [True, True, True], alone.checks


def test_a_config_the_connector_refuses_fails_in_one_line_with_its_reason(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    [faker] = [c for c in load_connections() if c.name == "faker"]
    broken = replace(faker, config={**faker.config, "count": "many"})
    monkeypatch.setattr(airbyte_assets, "load_connections", lambda: [broken])
    before = (settings.lake_dir / "airbyte" / "faker_users" / "data.parquet").read_bytes()

    summary = execute(build_definitions(settings), instance, assets=FAKER, progress=False)

    assert not summary.success
    message = " ".join(summary.failures)
    assert "Airbyte connection faker (source-faker) failed:" in message, message
    assert "count: 'many' is not of type 'integer'" in message, message
    after = (settings.lake_dir / "airbyte" / "faker_users" / "data.parquet").read_bytes()
    assert after == before  # nothing published
    assert summary.skipped == []  # its own step failed: not "upstream failed or stopped"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("source: source-faker\nconfig: {}\n", "missing 'streams'"),
        ("source: source-nope\nconfig: {}\nstreams: [users]\n", "no connector environment"),
        ("source: source-faker\nconfig: []\nstreams: [users]\n", "'config' must be a mapping"),
        ("source: source-faker\nconfig: {}\nstreams: []\nschedule: daily\n", "unknown key"),
        ("source: [unclosed\n", "not YAML"),
        # A bare string is not split into owners "t", "e", "a", "m"…
        (f"{FAKER_YML}owners: team:data-platform\n", "'owners' must be a list of strings"),
        (f"{FAKER_YML}owners: [team:a, 3]\n", "'owners' must be a list of strings"),
        (f"{FAKER_YML}description:\n", "'description' must be a string"),  # not "None"
        (f"{FAKER_YML}description: [a, b]\n", "'description' must be a string"),
        (
            "source: source-faker\nconfig: {}\nstreams: [users, products, users]\n",
            "'streams' lists users more than once",
        ),
        # The connector is a folder under envs/airbyte/connectors/, never a path elsewhere.
        (
            "source: /tmp/x/source-x\nconfig: {}\nstreams: [users]\n",
            "'source' must be a connector name like source-faker, not '/tmp/x/source-x'",
        ),
        (
            "source: ../../../tmp/x/source-x\nconfig: {}\nstreams: [users]\n",
            "'source' must be a connector name like source-faker",
        ),
        ("source: source-faker/../source-file\nconfig: {}\nstreams: [users]\n", "'source'"),
        ("source: ''\nconfig: {}\nstreams: [users]\n", "'source' must be a connector name"),
    ],
)
def test_a_broken_declaration_is_refused_in_one_line_naming_the_file(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"broken\.yml") as err:
        parse(path)
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_a_connector_folder_leading_outside_the_connectors_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connectors, elsewhere = tmp_path / "connectors", tmp_path / "elsewhere" / "source-x"
    elsewhere.mkdir(parents=True)
    (elsewhere / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    connectors.mkdir()
    (connectors / "source-x").symlink_to(elsewhere)
    monkeypatch.setattr(connections, "CONNECTORS_DIR", connectors)
    path = tmp_path / "linked.yml"
    path.write_text("source: source-x\nconfig: {}\nstreams: [users]\n")
    with pytest.raises(ConfigError, match=r"linked\.yml: no connector environment for 'source-x'"):
        parse(path)


def test_every_shipped_declaration_loads() -> None:
    names = {c.name for c in load_connections()}
    assert names == {p.stem for p in CONNECTIONS_DIR.glob("*.yml")} == {"faker", "landed_airlines"}
