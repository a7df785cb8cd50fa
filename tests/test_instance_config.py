"""Dagster's ``dagster.yaml`` per profile, from one place (``onering_assets/instance_config``).

What each test proves:
- the local profile keeps Dagster's SQLite storage with OneRing's queue; switching the state
  folder's profile rewrites the file OneRing wrote, never a file the user wrote;
- the compose profile's instance really stores runs, events and the queue in Postgres
  (dagster-postgres, on a real embedded Postgres here), its password only in the variable;
- without the variable, loading the compose instance fails naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import psycopg
import pytest
import yaml

from onering_assets import instance_config
from onering_assets.errors import ConfigError
from onering_assets.resources import embedded_pg
from onering_assets.runner import execute, instance_for
from onering_assets.settings import PROJECT_ROOT, Settings


def test_local_keeps_sqlite_and_a_profile_switch_rewrites_only_onerings_file(
    tmp_path: Path,
) -> None:
    home = tmp_path / "dagster"
    assert instance_config.write(home, "local")
    local = yaml.safe_load((home / "dagster.yaml").read_text())
    assert "storage" not in local  # Dagster's default: SQLite under DAGSTER_HOME
    assert local["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert not instance_config.write(home, "local")  # unchanged: not rewritten

    assert instance_config.write(home, "compose")
    text = (home / "dagster.yaml").read_text()
    assert text.startswith("# Written by OneRing for the compose profile")
    assert yaml.safe_load(text)["storage"] == {
        "postgres": {"postgres_url": {"env": "ONERING_DAGSTER_POSTGRES_URL"}}
    }

    own = "# my instance\nstorage:\n  sqlite:\n    base_dir: /somewhere\n"
    (home / "dagster.yaml").write_text(own)
    assert not instance_config.write(home, "compose")
    assert (home / "dagster.yaml").read_text() == own
    assert [p.name for p in home.iterdir()] == ["dagster.yaml"]  # no temporary file left


@pytest.fixture(scope="module")
def dagster_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``dagster`` database on a real embedded Postgres; its URL."""
    server = embedded_pg.start(tmp_path_factory.mktemp("pg") / "postgres")
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE dagster")
    password = quote(server.secrets.superuser, safe="")
    socket = quote(server.host, safe="")
    user = embedded_pg.SUPERUSER
    yield f"postgresql+psycopg2://{user}:{password}@/dagster?host={socket}&port={server.port}"


def test_the_compose_instance_stores_runs_and_events_in_postgres(
    tmp_path: Path, dagster_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster"
    instance_config.write(home, "compose")
    assert dagster_db.split("@")[0].split(":")[-1] not in (home / "dagster.yaml").read_text()
    monkeypatch.setenv("ONERING_DAGSTER_POSTGRES_URL", dagster_db)

    @dg.asset
    def answer() -> int:
        return 42

    defs = dg.Definitions(assets=[answer])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        summary = execute(defs, instance, assets={dg.AssetKey("answer")}, progress=False)
        assert summary.success, summary.failures
    conninfo = dagster_db.replace("postgresql+psycopg2://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn:
        [(status,)] = conn.execute(
            "SELECT status FROM runs WHERE run_id = %s", (summary.run_id,)
        ).fetchall()
        [(events,)] = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = "
            "'ASSET_MATERIALIZATION' AND asset_key LIKE %s",
            (summary.run_id, '%"answer"%'),
        ).fetchall()
    assert (status, events) == ("SUCCESS", 1)


def test_without_the_url_or_with_psycopg_3_the_compose_instance_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster"
    instance_config.write(home, "compose")
    monkeypatch.delenv("ONERING_DAGSTER_POSTGRES_URL", raising=False)
    with pytest.raises(Exception, match="ONERING_DAGSTER_POSTGRES_URL"):
        dg.DagsterInstance.from_config(str(home))
    settings = Settings(profile="compose", state_dir=tmp_path / "state")
    with pytest.raises(ConfigError, match="Set ONERING_DAGSTER_POSTGRES_URL"):
        instance_for(settings)
    monkeypatch.setenv("ONERING_DAGSTER_POSTGRES_URL", "postgresql://u:p@postgres:5432/dagster")
    with pytest.raises(ConfigError, match=r"must start postgresql\+psycopg2:// \(not postgresql"):
        instance_for(settings)
    # A value without a scheme (a pasted "user:password@host") is never echoed.
    for planted in (
        "onering:S3cret@postgres:5432/dagster",
        "x:S3cret@h://y",
        "u:S3cret://h",
        "S3cret",
    ):
        monkeypatch.setenv("ONERING_DAGSTER_POSTGRES_URL", planted)
        with pytest.raises(ConfigError) as refused:
            instance_for(settings)
        assert "S3cret" not in str(refused.value) and "psycopg2://" in str(refused.value)


def test_the_state_folders_instance_follows_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onering_assets.runner import write_instance_config

    settings = Settings(profile="local", state_dir=tmp_path / "state")
    write_instance_config(settings.dagster_home, settings.profile)
    assert "storage" not in yaml.safe_load((settings.dagster_home / "dagster.yaml").read_text())
    write_instance_config(settings.dagster_home, "compose")
    text = (settings.dagster_home / "dagster.yaml").read_text()
    assert "postgres_url" in text


def test_compose_writes_the_file_before_dagster_starts(tmp_path: Path) -> None:
    """The compose Dagster services write dagster.yaml before the webserver and the daemon
    (which only read it); the command exits 2 naming the variable when it is not set."""
    compose = yaml.safe_load((PROJECT_ROOT / "compose" / "docker-compose.yml").read_text())
    for name in ("dagster-webserver", "dagster-daemon"):
        command = " ".join(compose["services"][name]["command"])
        assert "python -m onering_assets.instance_config && exec dagster" in command, name
    env = {k: v for k, v in os.environ.items() if k != "ONERING_DAGSTER_POSTGRES_URL"} | {
        "ONERING_PROFILE": "compose",
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    command = [sys.executable, "-m", "onering_assets.instance_config"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "Set ONERING_DAGSTER_POSTGRES_URL" in refused.stderr
    assert not (tmp_path / "home" / "dagster.yaml").exists()
    env["ONERING_DAGSTER_POSTGRES_URL"] = "postgresql+psycopg2://u:secret@postgres:5432/dagster"
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "compose profile, written" in done.stdout
    text = (tmp_path / "home" / "dagster.yaml").read_text()
    assert "postgres_url" in text and "secret" not in text
