"""`onering stream replay | status | stop` as a user runs them (real processes, real broker)."""

from __future__ import annotations

import re
import subprocess
import sys

import dagster as dg
import pytest

from onering_assets.settings import Settings
from tests.conftest import run
from tests.stream.test_stream import consume
from tests.test_faults import cli_env, ok, onering


def test_replay_status_and_stop_say_what_they_did(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    state, source = settings.state_dir, settings.source_dir
    before = ok(onering(state, source, "stream", "status")).stdout
    assert "not running (starts on first use)" in before

    replayed = ok(onering(state, source, "stream", "replay", "-m", "2013-02", "--limit", "30"))
    assert replayed.stdout.startswith("published 30 flights in ")
    assert "onering materialize --select 'key:\"stream/flights_events\"'" in replayed.stdout
    assert "published 30 of 30 flights to persistent://public/default/onering-flights" in (
        replayed.stderr
    )
    running = ok(onering(state, source, "stream", "status")).stdout
    url = re.search(r"pulsar://127\.0\.0\.1:\d+", running)
    assert url and "(pid " in running

    # The broker outlived the command; the asset lands what it holds, from February only.
    assert consume(settings, instance)["rows_by_month"] == {"2013-02": 30}

    assert ok(onering(state, source, "stream", "stop")).stdout == "stopped the local broker\n"
    assert "not running" in ok(onering(state, source, "stream", "status")).stdout
    again = ok(onering(state, source, "stream", "stop")).stdout
    assert again == "the local broker was not running\n"

    # A month the batch path already landed: the replay says its events will land nothing.
    bronze = dg.AssetKey(["bronze", "flights"])
    assert run(
        settings, instance=instance, select={bronze}, first="2013-02", last="2013-02"
    ).success
    replayed = ok(onering(state, source, "stream", "replay", "-m", "2013-02", "--limit", "5"))
    assert "note: 2013-02 already in Bronze (the batch path's file)" in replayed.stderr
    assert consume(settings, instance)["rows_by_month"] == {}
    ok(onering(state, source, "stream", "stop"))


def test_an_unknown_month_is_one_line_and_exit_2(settings: Settings) -> None:
    refused = onering(settings.state_dir, settings.source_dir, "stream", "replay", "-m", "2013-13")
    assert refused.returncode == 2
    assert refused.stderr == "error: No month 2013-13; months run 2013-01 to 2013-12.\n"
    assert not (settings.state_dir / "pulsar").exists()  # nothing started for a refusal


@pytest.mark.parametrize("profile", ["compose", "local"])
def test_a_broker_that_does_not_answer_is_one_line_naming_it(
    settings: Settings, profile: str
) -> None:
    """ONERING_PULSAR_URL names the broker on every profile (locally too, never a hidden
    local broker instead)."""
    env = {"ONERING_PROFILE": profile, "ONERING_PULSAR_URL": "pulsar://127.0.0.1:9"}
    refused = onering_with(settings, env, "stream", "replay", "-m", "2013-01", "--limit", "1")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    [line] = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: Pulsar at pulsar://127.0.0.1:9 did not answer (")
    assert "Traceback" not in refused.stderr
    assert not (settings.state_dir / "pulsar").exists()  # no local broker started
    status = onering_with(settings, env, "stream", "status")
    assert status.stdout.startswith("broker: pulsar://127.0.0.1:9 (ONERING_PULSAR_URL)")


def onering_with(settings: Settings, extra: dict[str, str], *args: str):
    env = {**cli_env(settings.state_dir, settings.source_dir, None), **extra}
    return subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_local_broker_listens_only_on_loopback_and_serves_no_metrics(url: str) -> None:
    import psutil

    port = int(url.rsplit(":", 1)[1])
    pulsar_lite = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "pulsar-lite"]
    listening = {
        (c.laddr.ip, c.laddr.port)
        for p in pulsar_lite
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    mine = {address for address in listening if address[1] == port}
    assert mine == {("127.0.0.1", port)}
    assert all(ip == "127.0.0.1" for ip, _ in listening)  # no 0.0.0.0:8080 metrics endpoint
