"""`onering dev`: the Dagster UI starts on the state folder's instance and stops completely.

What is real here: the `onering` command (a subprocess in its own process group), `dagster dev`
with its webserver, daemon and code servers, and the signals. Nothing is materialized.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from airflow_bridge.processes import free_port, port_in_use
from onering_assets.devserver import NUX_OFF, answers, disable_community_dialog
from onering_assets.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
# A dagster.yaml as OneRing wrote it before the UI's community dialog was turned off, with
# a setting and a comment of someone's own: both must survive the upgrade.
OLD_CONFIG = (
    "telemetry:\n  enabled: false\nrun_coordinator:\n"
    "  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
    "  config:\n    max_concurrent_runs: 1\n    dequeue_interval_seconds: 1\n"
    "# my own setting\nrun_monitoring:\n  enabled: true\n"
)


def _onering() -> list[str]:
    script = Path(sys.executable).with_name("onering")
    return [str(script)] if script.exists() else [sys.executable, "-m", "onering_assets.cli"]


def test_existing_dagster_yaml_gets_nux_off_and_keeps_the_rest(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(OLD_CONFIG.rstrip("\n"))  # no final newline either
    disable_community_dialog(home)
    text = (home / "dagster.yaml").read_text()
    assert text == OLD_CONFIG + NUX_OFF
    assert yaml.safe_load(text) == {
        **yaml.safe_load(OLD_CONFIG),
        "nux": {"enabled": False},
    }
    disable_community_dialog(home)  # idempotent
    assert (home / "dagster.yaml").read_text() == text
    assert [p.name for p in home.iterdir()] == ["dagster.yaml"]  # no temporary file left
    # Dagster reads it: the UI's "Join the Dagster community" dialog is off.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.nux_enabled is False
        assert instance.run_monitoring_enabled is True


def test_a_nux_setting_of_ones_own_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("nux:\n  enabled: true\n")
    disable_community_dialog(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == "nux:\n  enabled: true\n"


def test_a_dagster_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        disable_community_dialog(tmp_path)


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


class Dev:
    """A running `onering dev` and the processes under it."""

    def __init__(self, state: Path, log: Path, *, background: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "ONERING_STATE_DIR": str(state), "ONERING_PROFILE": "local"}
        env.pop("DAGSTER_HOME", None)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*_onering(), "dev", "--port", str(self.port)],
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # A script's `onering dev &` starts with SIGINT ignored; a terminal's does not.
                preexec_fn=_ignoring_sigint if background else _taking_sigint,
            )
        self.tree: list[psutil.Process] = []
        self.stop_signal = signal.SIGTERM

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while (waiting := answers(self.url)) is not None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"onering dev not up ({waiting}):\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        self.tree = psutil.Process(self.proc.pid).children(recursive=True)

    def survivors(self) -> list[str]:
        return [" ".join(p.cmdline()[:6]) for p in self.tree if not _gone(p)]

    def kill_all(self) -> None:
        for process in [*self.tree]:
            if not _gone(process):
                process.kill()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _ignoring_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _taking_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# SIGTERM to a background `onering dev` (SIGINT ignored, as a shell starts a script's `&`
# job), SIGINT to one in a terminal (Ctrl-C).
STOPS = [(signal.SIGTERM, True), (signal.SIGINT, False)]


@pytest.fixture(params=STOPS, ids=lambda stop: stop[0].name)
def dev(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Dev]:
    state = tmp_path / "state"
    (state / "dagster").mkdir(parents=True)
    (state / "dagster" / "dagster.yaml").write_text(OLD_CONFIG)
    running = Dev(state, tmp_path / "onering-dev.log", background=request.param[1])
    running.stop_signal = request.param[0]
    try:
        yield running
    finally:
        running.kill_all()


def test_onering_dev_stops_every_process_it_started(dev: Dev) -> None:
    """On SIGTERM or SIGINT to `onering dev` alone, no Dagster process outlives it by 10 s;
    each stops cleanly (none killed) even when `onering dev` started with SIGINT ignored."""
    sig = dev.stop_signal
    dev.wait_until_ready()
    commands = " ".join(" ".join(p.cmdline()) for p in dev.tree)
    for part in ("dagster dev", "dagster_webserver", "dagster._daemon", "code-server"):
        assert part in commands, commands
    # The state folder's old dagster.yaml was upgraded in place: no community dialog.
    assert _graphql(dev.url, "{ shouldShowNux }") == {"shouldShowNux": False}
    config = yaml.safe_load((Path(dev.log.parent) / "state/dagster/dagster.yaml").read_text())
    assert config["nux"] == {"enabled": False}
    assert config["run_monitoring"] == {"enabled": True}

    sent = time.monotonic()
    dev.proc.send_signal(sig)
    dev.proc.wait(timeout=STOP_TIMEOUT_S)
    while dev.survivors() and time.monotonic() - sent < STOP_TIMEOUT_S:
        time.sleep(0.1)
    took = time.monotonic() - sent
    assert not dev.survivors(), f"still running {took:.1f} s after {sig.name}: {dev.survivors()}"
    assert not port_in_use(dev.port)
    assert f"{sig.name} received, stopping the Dagster UI" in dev.log.read_text()
    assert "superseded" not in dev.log.read_text()  # no "use dg dev" warning for the user
    assert "still running after" not in dev.log.read_text()  # they took SIGINT: none killed
    print(f"{sig.name}: {len(dev.tree)} processes gone in {took:.1f} s")
