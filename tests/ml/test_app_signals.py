"""`onering app` takes Streamlit with it when it is stopped by a signal (review: SIGTERM left it
serving, re-parented to init)."""

import signal
import socket
import subprocess
import sys
import time

from airflow_bridge.processes import free_port


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


def test_sigterm_to_onering_app_stops_streamlit() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "onering_assets.cli", "app", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert proc.poll() is None, "onering app exited before serving"
            assert time.monotonic() < deadline, "Streamlit did not listen within 120 s"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not _listening(port), "Streamlit still serves after onering app was stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
