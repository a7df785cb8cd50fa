"""`onering catalog publish|status`: dry runs, the status, help texts and exit codes.

One real run of ``bronze/airlines`` on the embedded stores gives the state a pending run.
The publisher is the stand-in of ``tests/lineage/test_delivery.py``, except in the last
test, which runs the real one in the openmetadata environment (skipped without `make setup`).
No OpenMetadata server can run on this machine: dry runs write the requests instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onering_assets.cli import app
from onering_assets.lineage.outbox import outbox_for
from onering_assets.settings import OPENMETADATA_PYTHON
from tests.lineage.test_delivery import (
    CATALOG_VARS,
    CLOSED_PORT_URL,
    REAL_PUBLISHER,
    airlines_run,
    calls,
    write_fake_publisher,
)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state with one run pending (no catalog was configured when it ended)."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        for name in CATALOG_VARS:
            patch.delenv(name, raising=False)
        airlines_run(state)
    return state


@pytest.fixture
def env(state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in CATALOG_VARS:
        monkeypatch.delenv(name, raising=False)
    return {
        "ONERING_STATE_DIR": str(state),
        "ONERING_CATALOG_PYTHON": str(write_fake_publisher(tmp_path)),
        "FAKE_PUBLISHER_LOG": str(tmp_path / "publisher.log"),
        "COLUMNS": "250",
    }


def invoke(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, ["catalog", *args], env=env, catch_exceptions=False)


def test_help_names_the_commands_targets_and_exit_codes() -> None:
    group = invoke({}, "--help")
    assert group.exit_code == 0
    for text in ("publish", "status", "ONERING_OPENMETADATA_URL", "ONERING_OPENLINEAGE_URL"):
        assert text in group.stdout
    publish = invoke({}, "publish", "--help")
    assert "--dry-run" in publish.stdout and "FILE" in publish.stdout
    assert "<state>/catalog/requests.json" in publish.stdout
    assert "Exit 0 published" in publish.stdout and "2 a failure a retry cannot fix" in (
        " ".join(publish.stdout.split())
    )


def test_a_dry_run_writes_the_requests_and_publishes_no_run(
    env: dict[str, str], state: Path, tmp_path: Path
) -> None:
    pending = outbox_for(state).pending()
    assert len(pending) == 1
    out = tmp_path / "requests.json"
    result = invoke(
        {**env, "ONERING_OPENMETADATA_URL": CLOSED_PORT_URL}, "publish", "--dry-run", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"dry run: OpenMetadata's requests written to {out}: 28 entities, "
    )
    assert ", 1 run, 28 requests in " in result.stdout and "; 1 run pending" in result.stdout
    requests = json.loads(out.read_text())
    assert len(requests) == 28 and requests[0]["method"] == "PUT"
    [call] = calls(Path(env["FAKE_PUBLISHER_LOG"]))
    assert call["dry_run"] == str(out) and call["runs"] == pending
    assert outbox_for(state).pending() == pending  # a dry run delivers nothing


def test_without_a_server_publish_is_a_dry_run_into_the_state(
    env: dict[str, str], state: Path
) -> None:
    result = invoke(env, "publish")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "ONERING_OPENMETADATA_URL is not set: a dry run"
    default = state / "catalog" / "requests.json"
    assert default.exists() and f"written to {default}" in result.stdout
    assert len(outbox_for(state).pending()) == 1


def test_status_lists_pending_runs_and_the_last_publish(env: dict[str, str], state: Path) -> None:
    invoke(env, "publish")
    result = invoke(env, "status")
    assert result.exit_code == 0, result.output
    [run_id] = outbox_for(state).pending()
    lines = result.stdout.splitlines()
    assert lines[0] == "OpenMetadata: not configured (ONERING_OPENMETADATA_URL)"
    assert lines[2] == f"publisher: {env['ONERING_CATALOG_PYTHON']}"
    assert lines[3:5] == ["runs: 1 pending, 0 published", f"  pending {run_id}"]
    assert lines[5].startswith("last publish: ") and " ok: dry run: " in lines[5]
    as_json = json.loads(invoke(env, "status", "--json").stdout)
    assert as_json["pending"] == [run_id] and as_json["last_publish"]["ok"] is True


def test_status_never_shows_credentials_written_in_a_url(env: dict[str, str]) -> None:
    urls = {
        "ONERING_OPENMETADATA_URL": "http://bot:om-secret@127.0.0.1:1/api?token=om-query",
        "ONERING_OPENLINEAGE_URL": "https://ol:ol-secret@lineage.example/api?key=ol-query",
    }
    result = invoke({**env, **urls}, "status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "OpenMetadata: http://127.0.0.1:1/api"
    assert lines[1] == "OpenLineage: https://lineage.example/api"
    as_json = invoke({**env, **urls}, "status", "--json").stdout
    for secret in ("om-secret", "om-query", "ol-secret", "ol-query", "bot:", "ol:"):
        assert secret not in result.output + as_json


def test_exit_codes_follow_the_cli(env: dict[str, str], state: Path) -> None:
    bad = invoke({**env, "ONERING_CATALOG_TIMEOUT": "soon"}, "publish")
    assert bad.exit_code == 2
    assert bad.output.strip() == (
        "error: ONERING_CATALOG_TIMEOUT='soon' must be a positive number."
    )
    missing = invoke(
        {
            **env,
            "ONERING_OPENMETADATA_URL": CLOSED_PORT_URL,
            "ONERING_CATALOG_PYTHON": "/no/python",
        },
        "publish",
    )
    assert missing.exit_code == 2
    assert "publisher's environment is missing (/no/python): run `make setup`" in missing.stderr
    down = invoke(
        {
            **env,
            "ONERING_OPENMETADATA_URL": CLOSED_PORT_URL,
            "FAKE_PUBLISHER_MODE": "down",
            "ONERING_CATALOG_ATTEMPTS": "1",
        },
        "publish",
    )
    assert down.exit_code == 1, down.output
    assert down.stderr.startswith("error: catalog: OpenMetadata publish failed (exit 3, retryable)")
    assert down.stderr.rstrip().endswith("; 1 run pending)")
    assert len(outbox_for(state).pending()) == 1


@pytest.mark.skipif(
    not (OPENMETADATA_PYTHON.exists() and REAL_PUBLISHER.exists()),
    reason="the openmetadata environment's publisher is not installed: run `make setup`",
)
def test_the_real_publisher_writes_a_dry_run(env: dict[str, str], tmp_path: Path) -> None:
    real = {k: v for k, v in env.items() if k != "ONERING_CATALOG_PYTHON"}
    out = tmp_path / "requests.json"
    result = invoke(real, "publish", "--dry-run", str(out))
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    requests = written["requests"] if isinstance(written, dict) else written
    assert requests and all({"method", "path", "body"} <= set(r) for r in requests)
    paths = {r["path"] for r in requests}
    assert any(p.startswith("/v1/pipelines") for p in paths), sorted(paths)[:20]
    assert f"{len(requests)} requests in " in result.stdout
    # What the catalog will lack is said on the terminal, not only in last_publish.json.
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("team:flight-analytics" in line for line in warned), result.stderr
