"""The declared Airbyte connections driving a running instance through dagster-airbyte.

No Airbyte server can run here, so ``tests/airbyte_api`` serves the endpoints OneRing calls
on a loopback port, validating every request against Airbyte's published API models. What
these tests prove: the requests OneRing sends are what Airbyte's API accepts; a first run
creates the source, destination and connection and syncs, a second creates nothing, a YAML
change patches the connection; the job's records become metadata and ``records_landed``; a
failed job, refused credentials, an unreachable URL and a connector the instance lacks each
fail in one line. What they cannot: that a real instance runs the connectors and lands the
files in S3 as modelled.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests

from onering_assets.airbyte import client
from onering_assets.airbyte.assets import build_connection_asset
from onering_assets.airbyte.connections import CONNECTIONS_DIR, parse
from onering_assets.definitions import build_definitions, resources_for
from onering_assets.errors import ConfigError
from onering_assets.runner import check_keys, execute
from onering_assets.settings import AirbyteSettings, Settings
from onering_assets.summary import RunSummary
from tests.airbyte_api.server import AirbyteApi
from tests.conftest import settings_for

CLIENT_ID, CLIENT_SECRET = "onering-test-app", "onering-test-app-secret"
USERS = dg.AssetKey(["airbyte", "faker_users"])
PRODUCTS = dg.AssetKey(["airbyte", "faker_products"])
FAKER = {USERS, PRODUCTS}
AIRLINES = dg.AssetKey(["airbyte", "landed_airlines_airlines"])
CREATED = [("POST", "/sources"), ("POST", "/destinations"), ("POST", "/connections")]


@pytest.fixture
def airbyte_api() -> Iterator[AirbyteApi]:
    """An instance with source-faker and destination-s3, but not source-file."""
    api = AirbyteApi(CLIENT_ID, CLIENT_SECRET, sources=("source-faker",))
    api.start()
    yield api
    api.stop()
    assert api.errors == [], api.errors  # every response matched Airbyte's models


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "state", None)


@pytest.fixture
def run(settings: Settings, instance: dg.DagsterInstance) -> Callable[..., RunSummary]:
    """A run of the given assets (the faker connection's by default) on this test's state."""

    def run(assets: set[dg.AssetKey] = FAKER) -> RunSummary:
        return execute(build_definitions(settings), instance, assets=assets, progress=False)

    return run


def point_at(monkeypatch: pytest.MonkeyPatch, url: str, secret: str = CLIENT_SECRET) -> None:
    for name, value in {
        "ONERING_AIRBYTE_URL": url,
        "ONERING_AIRBYTE_CLIENT_ID": CLIENT_ID,
        "ONERING_AIRBYTE_CLIENT_SECRET": secret,
        "ONERING_AIRBYTE_LAKE_URL": "s3://onering-lake/airbyte",
        "ONERING_AIRBYTE_S3_ENDPOINT": "http://minio:9000",
        "ONERING_AIRBYTE_POLL_INTERVAL": "0.05",
        "AWS_ACCESS_KEY_ID": "onering",
        "AWS_SECRET_ACCESS_KEY": "onering-secret",
    }.items():
        monkeypatch.setenv(name, value)


def metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def one_line_failure(summary) -> str:
    assert not summary.success
    [failure] = summary.failures
    assert "\n" not in failure and "Traceback" not in failure, failure
    return failure


def test_first_run_creates_and_syncs_and_an_unchanged_run_creates_nothing(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    settings: Settings,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, airbyte_api.url)
    summary = run()

    assert summary.success, summary.failures
    assert sorted(airbyte_api.writes()) == sorted(CREATED)
    assert [(c[1], c[2]) for c in summary.checks] == [("records_landed", True)] * 2
    users, products = metadata(instance, USERS), metadata(instance, PRODUCTS)
    assert users["airbyte_records"] == 200 and products["airbyte_records"] == 10  # count: 200
    assert users["path"] == "s3://onering-lake/airbyte/faker_users/"
    assert users["airbyte_changes"].count("created") == 3
    # What the instance now holds is faker.yml's declaration.
    [source] = airbyte_api.actors["source"].values()
    assert source["name"] == "onering-faker" and source["configuration"] == {
        "count": 200,
        "seed": 13,
        "records_per_slice": 100,
        "always_updated": False,
        "sourceType": "faker",
    }
    [destination] = airbyte_api.actors["destination"].values()
    assert destination["configuration"]["s3_bucket_name"] == "onering-lake"
    assert destination["configuration"]["s3_endpoint"] == "http://minio:9000"
    [connection] = airbyte_api.connections.values()
    assert connection["prefix"] == "faker_"
    assert [s["name"] for s in connection["configurations"]["streams"]] == ["users", "products"]

    again = run()

    assert again.success, again.failures
    assert sorted(airbyte_api.writes()) == sorted(CREATED)  # nothing created or patched
    assert len(airbyte_api.jobs) == 2 and metadata(instance, USERS)["airbyte_changes"] == "none"
    # Checks alone read the connection's latest job.
    defs = build_definitions(settings)
    alone = execute(defs, instance, checks=check_keys(defs, FAKER), progress=False)
    assert [c[2] for c in alone.checks] == [True, True] and len(airbyte_api.jobs) == 2


def test_a_yaml_change_updates_the_connection_and_a_drift_is_reverted(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    settings: Settings,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    point_at(monkeypatch, airbyte_api.url)
    assert run().success
    # Someone changes the connection on the instance: the next run puts the YAML back.
    [connection] = airbyte_api.connections.values()
    connection["configurations"]["streams"].pop()
    assert run().success
    assert airbyte_api.writes()[3:] == [("PATCH", f"/connections/{connection['connectionId']}")]
    assert len(connection["configurations"]["streams"]) == 2

    # faker.yml changed: 300 users and a third stream.
    changed = tmp_path / "faker.yml"
    text = (CONNECTIONS_DIR / "faker.yml").read_text()
    changed.write_text(
        text.replace("count: 200", "count: 300").replace(
            "[users, products]", "[users, products, purchases]"
        )
    )
    defs = dg.Definitions(
        assets=[build_connection_asset(parse(changed))], resources=resources_for(settings)
    )
    summary = execute(defs, instance, assets=FAKER, progress=False)

    assert summary.success, summary.failures
    source_id = next(iter(airbyte_api.actors["source"]))
    assert airbyte_api.writes()[4:] == [
        ("PATCH", f"/sources/{source_id}"),
        ("PATCH", f"/connections/{connection['connectionId']}"),
    ]
    assert airbyte_api.actors["source"][source_id]["configuration"]["count"] == 300
    streams = [s["name"] for s in connection["configurations"]["streams"]]
    assert streams == ["users", "products", "purchases"]
    assert metadata(instance, USERS)["airbyte_records"] == 300


def test_a_failed_job_fails_in_one_line_with_airbytes_reason(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, airbyte_api.url)
    airbyte_api.fail_next_job = "Something went wrong in the connector. See the logs for more."
    before = instance.get_latest_materialization_event(USERS)

    summary = run()

    failure = one_line_failure(summary)
    assert "Airbyte connection faker on http://127.0.0.1:" in failure, failure
    assert "Job failed: 1: Something went wrong in the connector." in failure, failure
    assert [(c[1], c[2]) for c in summary.checks] == [("records_landed", False)] * 2
    assert instance.get_latest_materialization_event(USERS) == before  # nothing materialized


def test_refused_credentials_fail_in_one_line_naming_the_variables(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, airbyte_api.url, secret="not-the-secret")

    summary = run()

    failure = one_line_failure(summary)
    assert "refused the credentials (401 on POST /api/public/v1/applications/token)" in failure
    assert "ONERING_AIRBYTE_CLIENT_SECRET" in failure and "not-the-secret" not in failure
    assert airbyte_api.writes() == []


def test_an_unreachable_url_fails_in_one_line_naming_it(
    run: Callable[..., RunSummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_at(monkeypatch, f"http://127.0.0.1:{port}")

    summary = run()

    failure = one_line_failure(summary)
    assert f"Airbyte at http://127.0.0.1:{port} is unreachable (ConnectionError" in failure
    assert "ONERING_AIRBYTE_URL" in failure, failure


def test_a_connector_the_instance_lacks_fails_in_one_line(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, airbyte_api.url)

    summary = run({AIRLINES})

    failure = one_line_failure(summary)
    assert "has no source connector airbyte/source-file" in failure, failure
    assert airbyte_api.writes() == []


def test_without_a_url_the_connections_run_locally_and_a_bad_url_is_refused() -> None:
    assert AirbyteSettings.from_env({}).url is None
    compose = AirbyteSettings.from_env(
        {"ONERING_AIRBYTE_URL": "http://localhost:8000/", "ONERING_LAKE_URL": "s3://onering-lake"}
    )
    assert compose.url == "http://localhost:8000"
    assert compose.lake_url == "s3://onering-lake/airbyte"
    with pytest.raises(ConfigError, match="ONERING_AIRBYTE_URL='localhost:8000'"):
        AirbyteSettings.from_env({"ONERING_AIRBYTE_URL": "localhost:8000"})


def test_the_loopback_refuses_what_airbytes_api_refuses(airbyte_api: AirbyteApi) -> None:
    url = f"{airbyte_api.url}/api/public/v1"
    assert requests.get(f"{url}/workspaces", timeout=5).status_code == 401
    credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    token = requests.post(f"{url}/applications/token", json=credentials, timeout=5).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    faker = airbyte_api.definitions["source"]["airbyte/source-faker"]
    body = {
        "name": "onering-faker",
        "workspaceId": airbyte_api.workspace_id,
        "definitionId": faker,
        "configuration": {"sourceType": "faker", "count": 200},
    }
    refused = {
        "count: 'many' is not of type 'integer'": {
            **body,
            "configuration": {"sourceType": "faker", "count": "many"},
        },
        "'workspaceID' was unexpected": {**body, "workspaceID": body["workspaceId"]},
        "unknown source type 'nope'": {**body, "configuration": {"sourceType": "nope"}},
        "'file' is not the definition's airbyte/source-faker": {
            **body,
            "configuration": {"sourceType": "file"},
        },
    }
    for reason, wrong in refused.items():
        response = requests.post(f"{url}/sources", json=wrong, headers=auth, timeout=5)
        assert response.status_code == 400 and reason in response.json()["detail"], response.text
    assert airbyte_api.actors["source"] == {}
    created = requests.post(f"{url}/sources", json=body, headers=auth, timeout=5)
    assert created.status_code == 200 and created.json()["sourceType"] == "faker"


def test_a_job_that_never_ends_is_cancelled_after_the_poll_timeout(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, airbyte_api.url)
    monkeypatch.setenv("ONERING_AIRBYTE_POLL_TIMEOUT", "0.5")
    monkeypatch.setattr(airbyte_api, "_finish", lambda job: None)  # it stays "running"

    summary = run()

    failure = one_line_failure(summary)
    assert "Airbyte job 1 of connection" in failure, failure
    assert "still ran after ONERING_AIRBYTE_POLL_TIMEOUT=0.5 s: cancelled it" in failure
    assert [j["status"] for j in airbyte_api.jobs.values()] == ["cancelled"]
    assert AirbyteSettings.from_env({}).poll_timeout_s == 3600  # finite by default
    with pytest.raises(ConfigError, match="ONERING_AIRBYTE_POLL_TIMEOUT='0'"):
        AirbyteSettings.from_env({"ONERING_AIRBYTE_POLL_TIMEOUT": "0"})


def test_a_sync_left_running_is_polled_to_its_end_and_two_are_named(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, airbyte_api.url)
    assert run().success
    [connection_id] = list(airbyte_api.connections)
    airbyte_api._start(connection_id)  # what a killed step leaves: job 2, still running

    summary = run()

    assert summary.success, summary.failures  # not "already running: no reason recorded"
    assert len(airbyte_api.jobs) == 2 and metadata(instance, USERS)["airbyte_job_id"] == 2
    # Two running (not what one Airbyte allows, but what a bug could leave): both named.
    job = airbyte_api._start(connection_id)
    airbyte_api.jobs[4] = {**job, "jobId": 4}
    failure = one_line_failure(run())
    assert f"Airbyte connection {connection_id} has syncs running (jobs 3, 4)" in failure
    assert "DELETE /api/public/v1/jobs/<id>" in failure, failure


def erring_polls(api: AirbyteApi, times: int) -> None:
    """The first ``times`` polls of a job answer 500."""
    real, left = api.handle, [times]

    def handle(method: str, target: str, headers, raw: bytes):
        if method == "GET" and "/api/public/v1/jobs/" in target and left[0]:
            left[0] -= 1
            api.requests.append((method, target))
            return 500, {"status": 500, "title": "error", "detail": "internal server error"}
        return real(method, target, headers, raw)

    api.handle = handle  # type: ignore[method-assign]


def test_a_5xx_while_polling_is_retried_with_backoff_and_named_as_such(
    run: Callable[..., RunSummary],
    airbyte_api: AirbyteApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_at(monkeypatch, airbyte_api.url)
    monkeypatch.setattr(client, "POLL_BACKOFF_MAX_S", 0.1)
    # Five 500s in a row (more than the quick retries of other requests): the sync goes on.
    erring_polls(airbyte_api, 5)
    summary = run()
    assert summary.success, summary.failures
    assert [j["status"] for j in airbyte_api.jobs.values()] == ["succeeded"]

    # A 500 that lasts past the window: one line saying so, not "unreachable".
    monkeypatch.setattr(client, "POLL_RETRY_WINDOW_S", 0.5)
    erring_polls(airbyte_api, 1000)
    failure = one_line_failure(run())
    assert f"Airbyte at {airbyte_api.url} answered 500 on GET /api/public/v1/jobs/2" in failure
    assert "internal server error" in failure and "unreachable" not in failure, failure
