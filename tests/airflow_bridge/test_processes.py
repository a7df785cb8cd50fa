"""A child started with ``dying_with_parent`` dies with the process that started it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from airflow_bridge.processes import alive

PARENT = """
import subprocess, sys, time
from airflow_bridge.processes import dying_with_parent
child = subprocess.Popen(dying_with_parent(["sleep", "60"], __import__("signal").SIGKILL))
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


def test_the_child_dies_with_its_parent_killed_outright(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(pid_file)], cwd=Path(__file__).parents[2]
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    time.sleep(0.5)  # the wrapper has exec'd `sleep` by now
    assert alive(child)
    assert Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep")
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
