"""The local Pulsar: pulsar-lite on 127.0.0.1 under the state folder (Apache Pulsar in compose).

pulsar-lite speaks Pulsar's wire protocol to the official ``pulsar-client`` and keeps its
topics in RocksDB, so unacknowledged messages survive a restart of the broker. It has no admin
API (topics are created on first use) and serves Prometheus metrics on 0.0.0.0:8080 unless told
otherwise: the configuration written here turns them off, so nothing listens beyond loopback.

One broker serves a state folder. Whoever needs it first (``onering stream replay``, the stream
asset) starts it detached and records its address in ``<state>/pulsar/broker.json``; later
users connect to that address while its process lives; ``onering stream stop`` and
``onering reset`` stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from airflow_bridge.processes import alive, free_port
from onering_assets.errors import ConfigError, OneRingError
from onering_assets.resources.locks import store_lock

STARTUP_TIMEOUT_S = 20.0
RECORD = "broker.json"


class BrokerError(OneRingError):
    """The local broker could not be started or reached (its log is named)."""


@dataclass(frozen=True)
class Broker:
    """A running pulsar-lite: its ``pulsar://`` URL, process and folder."""

    url: str
    pid: int
    folder: Path

    @property
    def log(self) -> Path:
        return self.folder / "broker.log"


def binary() -> str:
    """The pulsar-lite executable shipped in its wheel."""
    try:
        from pulsar_lite.binary_finder import find_pulsar_lite_binary
    except ImportError:
        raise ConfigError(
            "pulsar-lite is not installed in this environment; run `make setup`, or set "
            "ONERING_PULSAR_URL to a Pulsar broker."
        ) from None
    return find_pulsar_lite_binary()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def config_text(folder: Path, port: int) -> str:
    """pulsar-lite's TOML: the protocol on 127.0.0.1:``port``, its data here, no metrics."""
    return (  # JSON strings are valid TOML basic strings: a path with " or \ stays one
        f'addr = "127.0.0.1:{port}"\n'
        f"db_path = {json.dumps(str(folder / 'data'))}\n"
        'log_level = "warn"\n'
        "\n[metrics]\n"
        "enabled = false\n"
    )


def _is_broker(pid: int) -> bool:
    try:
        return "pulsar-lite" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def running(folder: Path) -> Broker | None:
    """The broker recorded in ``folder`` if its process lives and it accepts connections."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    broker = Broker(record["url"], int(record["pid"]), folder)
    port = int(broker.url.rsplit(":", 1)[1])
    if alive(broker.pid) and _is_broker(broker.pid) and _listening(port):
        return broker
    return None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def start(folder: Path, timeout_s: float = STARTUP_TIMEOUT_S) -> Broker:
    """The folder's broker, started (detached, on a free loopback port) if none runs.

    Raises:
        BrokerError: it exited or did not listen within ``timeout_s`` (its log is named).
    """
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with store_lock(folder / "broker.lock", timeout_s=timeout_s + 10, what="Pulsar broker start"):
        found = running(folder)
        if found is not None:
            return found
        port = free_port()
        config = folder / "pulsar-lite.toml"
        config.write_text(config_text(folder, port))
        log = folder / "broker.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [binary(), "--config", str(config)],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the command that started it
            )
        deadline = time.monotonic() + timeout_s
        while proc.poll() is not None or not _listening(port):
            if proc.poll() is not None:  # exited (a port taken meanwhile, a bad config)
                raise BrokerError(
                    f"The local Pulsar broker (pulsar-lite) exited with {proc.returncode} "
                    f"while starting: {_tail(log)}; see {log}."
                )
            if time.monotonic() > deadline:
                proc.kill()
                raise BrokerError(
                    f"The local Pulsar broker did not listen on 127.0.0.1:{port} within "
                    f"{timeout_s:g} s; see {log}."
                )
            time.sleep(0.05)
        broker = Broker(f"pulsar://127.0.0.1:{port}", proc.pid, folder)
        (folder / RECORD).write_text(json.dumps({"url": broker.url, "pid": broker.pid}))
        return broker


def stop(folder: Path, timeout_s: float = 10.0) -> bool:
    """Stop the folder's broker (SIGTERM, then SIGKILL); whether one was running."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    pid = int(record["pid"])
    was_running = alive(pid) and _is_broker(pid)  # a recycled pid is never signalled
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    (folder / RECORD).unlink(missing_ok=True)
    return was_running
