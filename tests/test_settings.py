from pathlib import Path

import pytest

from onering_assets.errors import ConfigError
from onering_assets.settings import Settings


def test_defaults_to_local_profile_under_dot_onering() -> None:
    settings = Settings.from_env({})
    assert settings.profile == "local"
    assert settings.state_dir == Path(".onering").resolve()
    assert settings.source_dir is None
    assert settings.clickhouse_dir == settings.state_dir / "clickhouse"


def test_reads_profile_state_and_source(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "ONERING_PROFILE": "compose",
            "ONERING_STATE_DIR": str(tmp_path),
            "ONERING_SOURCE_DIR": str(tmp_path / "src"),
            "ONERING_LOCK_TIMEOUT": "5",
        }
    )
    assert (settings.profile, settings.state_dir, settings.lock_timeout_s) == (
        "compose",
        tmp_path,
        5.0,
    )
    assert settings.source_dir == tmp_path / "src"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ONERING_PROFILE": "prod"}, "use one of: local, compose"),
        ({"ONERING_LOCK_TIMEOUT": "soon"}, "must be a number of seconds"),
    ],
)
def test_bad_settings_say_what_to_do(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_importing_definitions_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import onering_assets.definitions as definitions

    monkeypatch.setenv("ONERING_PROFILE", "not-a-profile")
    importlib.reload(definitions)  # would raise if the module resolved settings at import
    with pytest.raises(ConfigError):
        definitions.build_definitions()


def test_gold_reader_is_the_read_only_role_in_both_profiles(tmp_path: Path) -> None:
    import dagster as dg

    from onering_assets.definitions import resources_for

    local = resources_for(Settings(profile="local", state_dir=tmp_path))["gold_reader"]
    assert (local.role, local.embedded_dir) == ("reader", str(tmp_path / "postgres"))
    compose = resources_for(Settings(profile="compose", state_dir=tmp_path))["gold_reader"]
    assert compose.role == "reader"
    # A dg.EnvVar, read only when `onering sql` (or a BI tool) uses it, never at import.
    assert isinstance(compose.dsn, dg.EnvVar) and compose.dsn == "ONERING_POSTGRES_READER_DSN"
