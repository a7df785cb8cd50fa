"""The Dagster UI on OneRing's code location, as a child process.

`onering dev` runs :func:`command` (:func:`run` behind :func:`guard`) in the foreground; the
fixtures and benches that need a real webserver use :func:`serving`, which owns the process
from start to stop. Either way Dagster runs in its own process group and :func:`stop` ends it:
SIGINT to the whole group (what Ctrl-C in a terminal does, so the webserver, the daemon and
their code servers all shut down at once), a few seconds' grace, then SIGKILL for whatever is
left. The instance's ``dagster.yaml`` gets the UI's settings first (:func:`prepare_home`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil
import yaml

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.settings import PROJECT_ROOT

CODE_LOCATION = "onering_assets.definitions"
# Dagster needs ~3-7 s on 2 busy cores (more under load) to shut the webserver, daemon and
# code servers down; what still runs after this grace period is killed.
STOP_GRACE_S = 8.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # prctl(2)
# The UI's "Join the Dagster community" dialog covers the first screen; `nux` is the key of
# Dagster's instance config (1.13) that turns it off.
NUX_OFF = "# No 'Join the Dagster community' dialog in the UI (OneRing)\nnux:\n  enabled: false\n"


def command(port: int) -> list[str]:
    """What `onering dev` runs: :func:`run` behind :func:`guard`, on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "onering_assets.devserver", str(port)]


def dagster_command(port: int, *, daemon: bool = True) -> list[str]:
    """``dagster dev`` (webserver and daemon), or the webserver alone, on 127.0.0.1."""
    program = ["dagster", "dev"] if daemon else ["dagster_webserver"]
    # `dagster dev` warns that `dg dev` supersedes it (a FutureWarning, in this launcher
    # process only; its webserver and daemon children warn as before).
    quiet = ["-W", "ignore::FutureWarning"] if daemon else []
    where = ["-m", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(port)]
    return [sys.executable, *quiet, "-m", *program, *where]


def answers(url: str) -> str | None:
    """``None`` once the webserver answers ``/server_info``; else what it is waiting for."""
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except OSError as err:
        return f"not answering yet ({type(err).__name__})"


def disable_community_dialog(home: Path) -> None:
    """Turn the UI's community dialog off in ``home``'s ``dagster.yaml``, keeping the rest.

    State folders made before OneRing wrote this setting get it too: the block is appended
    when the file has no ``nux`` key, so every other setting and comment stays byte for byte.
    A ``nux`` key already there is someone's choice and is left alone.

    Raises:
        ConfigError: the file is not a YAML mapping (Dagster could not read it either).
    """
    config = home / "dagster.yaml"
    text = config.read_text() if config.exists() else ""
    try:
        loaded = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{config} is not valid YAML: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"{config} must be a YAML mapping of Dagster instance settings.")
    if "nux" in loaded:
        return
    separator = "" if not text or text.endswith("\n") else "\n"
    home.mkdir(parents=True, exist_ok=True)
    partial = config.with_name(f".dagster.yaml.{os.getpid()}.tmp")
    partial.write_text(text + separator + NUX_OFF)
    partial.replace(config)  # readers see the old file or the new one, never half


def prepare_home(home: Path) -> None:
    """OneRing's ``dagster.yaml`` in ``home`` (written if missing), with the UI's settings."""
    from onering_assets.runner import write_instance_config
    from onering_assets.settings import Settings

    write_instance_config(home, Settings.from_env().profile)
    disable_community_dialog(home)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every descendant of it, as they are now."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def exit_status(proc: subprocess.Popen) -> int | None:
    """``proc``'s exit status once it exited (``-N``: killed by signal N), else ``None``.

    Unlike :meth:`subprocess.Popen.poll` it leaves an exited ``proc`` unreaped, so its pid,
    the id of its process group, stays taken until :func:`stop` has signalled the group.
    """
    if proc.returncode is not None:
        return proc.returncode
    done = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if done is None:
        return None
    return done.si_status if done.si_code == os.CLD_EXITED else -done.si_status


def stop(proc: subprocess.Popen, *, grace_s: float = STOP_GRACE_S) -> list[int]:
    """Stop the UI started in its own process group; the pids that had to be killed.

    SIGINT goes to the whole group; after ``grace_s`` the group and every process that was a
    descendant when the stop began get SIGKILL, so none is left even if one changed group.
    """
    if proc.returncode is not None:  # reaped already: its pid may be another process's now
        return []
    tree = _tree(proc.pid)
    _signal_group(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    # The leader is reaped only at the end, so its pid (the group's id) cannot be reused.
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in tree if _alive(p)]
    _signal_group(proc.pid, signal.SIGKILL)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    proc.wait()
    return [p.pid for p in left]


def run(port: int, home: Path) -> int:
    """The UI and daemon on the instance in ``home``, until they exit or are stopped.

    SIGINT (Ctrl-C), SIGTERM and SIGHUP stop every Dagster process within
    :data:`STOP_GRACE_S` and a moment (more signals meanwhile change nothing). Returns
    Dagster's exit status when it ended on its own, 0 when a signal stopped it.
    """
    prepare_home(home)
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        proc = subprocess.Popen(
            dagster_command(port),
            cwd=PROJECT_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its group is stopped as one, by stop()
        )
        while not received and exit_status(proc) is None:
            time.sleep(0.2)
        if not received:  # Dagster exited by itself: leave nothing of it behind
            stop(proc, grace_s=0)
            return proc.wait()
        name = signal.Signals(received[0]).name
        _say(f"{name} received, stopping the Dagster UI")
        killed = stop(proc)
        if killed:
            _say(f"killed {len(killed)} Dagster process(es) still running after {STOP_GRACE_S:g} s")
        _say("stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(message: str) -> None:
    sys.stderr.write(f"onering dev: {message}\n")
    sys.stderr.flush()


def _die_with_parent() -> None:
    """Have Linux send this process SIGTERM when its parent exits, however it exits."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def guard(port: int, home: Path) -> int:
    """:func:`run` in a forked keeper that stops the UI whenever this process ends.

    `onering dev` runs this as its child with :func:`subprocess.call`, which SIGKILLs the
    child on Ctrl-C, and a SIGTERM kills `onering dev` before it can pass anything on. So
    this process only relays stop signals and waits; the keeper (its child) gets SIGTERM from
    the kernel when this process exits for any reason, and always stops the UI in time.
    """
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # `onering dev` is already gone
        return 0
    me = os.getpid()
    keeper = os.fork()
    if keeper == 0:
        # A stop relayed before run() installs its handlers ends the keeper (even a SIGINT
        # that a background job's `onering dev` inherited as ignored).
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        code = 1
        try:
            _die_with_parent()
            code = 0 if os.getppid() != me else run(port, home)
        except OneRingError as err:
            _say(f"error: {err}")
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)  # never return into the relay below

    def relay(signum: int, _frame: object) -> None:  # the keeper names what was received
        with contextlib.suppress(ProcessLookupError):
            os.kill(keeper, signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, relay)
    _, status = os.waitpid(keeper, 0)
    return os.waitstatus_to_exitcode(status)


@contextmanager
def serving(
    state_dir: Path,
    port: int,
    log_path: Path,
    *,
    daemon: bool = True,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120,
    ready: Callable[[str], str | None] = answers,
) -> Iterator[str]:
    """Run the UI on the instance under ``state_dir``; yield its URL once ``ready``; stop it.

    It runs in its own process group (the webserver's code server and the daemon with it),
    so stopping it stops them all.

    Raises:
        OneRingError: it exited, or was not ready within ``timeout_s``; with its log's end.
    """
    home = state_dir / "dagster"
    prepare_home(home)
    full_env = {
        **(os.environ if env is None else env),
        "DAGSTER_HOME": str(home),
        "ONERING_STATE_DIR": str(state_dir),
    }
    url = f"http://127.0.0.1:{port}"
    command = dagster_command(port, daemon=daemon)
    with launched(command, full_env, log_path, url, ready, "Dagster UI", timeout_s, 0.5):
        yield url


@contextmanager
def launched(
    command: list[str],
    env: Mapping[str, str],
    log_path: Path,
    url: str,
    ready: Callable[[str], str | None],
    what: str,
    timeout_s: float,
    poll_s: float,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group; yield it once ready; stop the group after.

    Its output goes to ``log_path``; it is ready when ``ready(url)`` names nothing missing.

    Raises:
        OneRingError: it exited or was not ready within ``timeout_s``; with its log's end.
    """
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while (waiting := ready(url)) is not None:
            status = exit_status(proc)
            if status is not None or time.monotonic() > deadline:
                why = f"exited {status}" if status is not None else "timed out"
                log_end = log_path.read_text(errors="replace")[-3000:]
                raise OneRingError(f"{what} on {url} {why} ({waiting}):\n{log_end}")
            time.sleep(poll_s)
        yield proc
    finally:
        stop(proc)


def main(argv: list[str]) -> int:
    """``python -m onering_assets.devserver PORT``: :func:`guard` on ``$DAGSTER_HOME``."""
    from onering_assets.settings import Settings

    home = os.environ.get("DAGSTER_HOME")
    return guard(int(argv[0]), Path(home) if home else Settings.from_env().dagster_home)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
