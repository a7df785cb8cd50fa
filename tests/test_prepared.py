"""The Airflow workers' preloaded definitions never serve an old declaration.

`onering airflow up` builds the definitions once before Airflow forks its task processes
(``runner.prepare_worker``). A task whose platform files changed since builds them again;
exported DAG files (written by every export) do not count as a change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from onering_assets import runner
from tests.conftest import settings_for


def test_preloaded_definitions_are_rebuilt_after_a_platform_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = tmp_path / "platform"
    sql = platform / "analytics" / "t.sql"
    dags = platform / "orchestration" / "airflow" / "dags"
    sql.parent.mkdir(parents=True)
    dags.mkdir(parents=True)
    sql.write_text("SELECT 1")
    monkeypatch.setattr(runner, "PLATFORM_DIR", platform)
    built: list[object] = []
    monkeypatch.setattr(runner, "_build", lambda settings: built.append(object()) or built[-1])
    settings = settings_for(tmp_path / "state", None)
    preloaded = object()
    monkeypatch.setitem(runner._PREPARED, settings, (runner.platform_stamp(), preloaded))

    assert runner.prepared(settings) is preloaded and not built
    (dags / "onering_bronze.py").write_text("# exported")
    assert runner.prepared(settings) is preloaded and not built

    sql.write_text("SELECT 2")  # same size, perhaps the same mtime: the content tells
    fresh = runner.prepared(settings)
    assert fresh is not preloaded and built == [fresh]
    (platform / "analytics" / "u.yml").write_text("columns: []")
    assert runner.prepared(settings) is built[-1] and len(built) == 2


def test_every_cache_of_the_declarations_is_forgotten_on_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuilt definitions read the files again: every ``functools.cache`` of OneRing's is
    one the rebuild clears (a new one must be added to ``_DECLARATION_CACHES``)."""
    import functools
    import importlib
    import pkgutil

    import onering_assets

    caches = set()
    for info in pkgutil.walk_packages(onering_assets.__path__, "onering_assets."):
        if info.name.startswith("onering_assets.cli.__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, functools._lru_cache_wrapper) and value.__module__ == info.name:
                caches.add((info.name, name))
    assert caches == set(runner._DECLARATION_CACHES)

    from onering_assets.catalog import load_catalog

    load_catalog()
    assert load_catalog.cache_info().currsize == 1
    monkeypatch.setattr(runner, "PLATFORM_DIR", tmp_path)
    monkeypatch.setattr(runner, "_build", lambda settings: object())
    settings = settings_for(tmp_path / "state", None)
    monkeypatch.setitem(runner._PREPARED, settings, (("old",), object()))
    runner.prepared(settings)
    assert load_catalog.cache_info().currsize == 0
