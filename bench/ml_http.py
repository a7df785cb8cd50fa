"""ML bench, over HTTP: the two servers and a client that measures them alike.

Both servers (BentoML, and the bare Starlette floor of ``bench.ml_floor``) run as child
processes on 127.0.0.1 on the same state; the client keeps one HTTP/1.1 connection alive
(``http.client``) so its own cost is the same for both. Beside the wall latency, each
round reads the server's CPU time (its whole process tree, ``psutil``): with other work on
the machine, CPU per request says what the server itself costs.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.harness import ROOT


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants, as of now."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class Client:
    """One kept-alive connection to a server; every answer must be 200."""

    def __init__(self, port: int, pid: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.pid = pid
        self.headers = {"Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> bytes:
        try:
            self.connection.request("POST", path, body, self.headers)
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the idle connection (uvicorn: 5 s keep-alive); reconnect.
            self.connection.close()
            self.connection.request("POST", path, body, self.headers)
            response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: HTTP {response.status}: {data[:300]!r}")
        return data

    def singles(self, bodies: Sequence[bytes]) -> tuple[list[float], float]:
        """Seconds per ``/predict`` call, and the server's CPU seconds over them.

        One untimed call first: the connection may have been closed while idle.
        """
        self.post("/predict", bodies[0])
        cpu = tree_cpu_s(self.pid)
        seconds = []
        for body in bodies:
            started = time.perf_counter()
            self.post("/predict", body)
            seconds.append(time.perf_counter() - started)
        return seconds, tree_cpu_s(self.pid) - cpu

    def batch(self, body: bytes) -> float:
        started = time.perf_counter()
        self.post("/predict_batch", body)
        return time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


def wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
    """Until ``GET /readyz`` answers 200; fails with the log's end if the server exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server on {port} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        time.sleep(0.25)
    sys.exit(f"server on {port} not ready in {timeout_s:g} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def floor_server(port: int, env: dict[str, str], log: Path) -> Iterator[int]:
    """``python -m bench.ml_floor PORT``; yields its pid once ready; stops it."""
    from onering_assets.devserver import stop

    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.ml_floor", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(port, proc, log)
        yield proc.pid
    finally:
        stop(proc)


def request_bodies(flights: Sequence[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(f).encode() for f in flights]


def batch_body(flights: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps({"flights": list(flights)}).encode()
