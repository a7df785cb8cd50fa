"""What the benches share: paths, worker re-exec, state folders, timing, RSS, formatting.

The benches run as modules from the repo root (``python -m bench.pipeline``), so their
modules import each other as ``bench.<name>``; a worker is the same module re-executed
with ``-m`` in a fresh interpreter (:func:`reexec`).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
LOGS_DIR = RESULTS_DIR / "logs"


# --------------------------------------------------------------------------- processes


def reexec(module: str, argv: list[str], *, env: dict[str, str], log: Path, timeout: float) -> int:
    """``python -m module *argv`` in a fresh interpreter from the repo root; output to ``log``.

    Returns the exit code; a run past ``timeout`` raises ``subprocess.TimeoutExpired``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", module, *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
    return proc.returncode


def airflow_scratch_env(scratch: Path, **extra: str) -> dict[str, str]:
    """This process's environment with an Airflow home under ``scratch`` (made here) and
    no example DAGs, for benches that import or parse with Airflow in child processes."""
    home = scratch / "airflow_home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        **extra,
    }


def onering_env(
    state_dir: Path, source_dir: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` (this process's environment) for a local run on ``state_dir``: the package
    data unless ``source_dir`` (an inherited ``ONERING_SOURCE_DIR`` is dropped)."""
    env = {**(os.environ if base is None else base)}
    env |= {"ONERING_STATE_DIR": str(state_dir), "ONERING_PROFILE": "local"}
    if source_dir:
        env["ONERING_SOURCE_DIR"] = str(source_dir)
    else:
        env.pop("ONERING_SOURCE_DIR", None)
    return env


@contextlib.contextmanager
def state_folder(
    prefix: str, keep: bool, say: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """A fresh folder under ``$TMPDIR``; removed on exit unless ``keep`` (then ``say`` it)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if not keep:
            from onering_assets.resources.postgres import stop_embedded

            for pid in folder.glob("**/postmaster.pid"):  # Gold's servers, left running
                stop_embedded(pid.parent)
            shutil.rmtree(folder, ignore_errors=True)
        elif say is not None:
            say(f"kept {folder}")


# --------------------------------------------------------------------------- measuring


@contextlib.contextmanager
def timed(into: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to ``into[name]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        into[name] = into.get(name, 0.0) + time.perf_counter() - started


def timing_wrapper(fn: Callable[..., Any], into: dict[str, float], name: str) -> Any:
    """``fn``, adding the wall time of every call to ``into[name]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timed(into, name):
            return fn(*args, **kwargs)

    return wrapper


def peak_rss_mb() -> dict[str, float]:
    """Peak resident set size of this process and of its waited-for children, in MB."""
    to_mb = 1 / 1024  # Linux reports ru_maxrss in KiB
    return {
        "self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb, 1),
        "children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb, 1),
    }


class TreeRss:
    """Peak resident set size, sampled every ``interval_s`` in a thread, of this process's
    descendants plus the embedded Postgres of ``state_dir`` (its postmaster and backends,
    which are not our descendants once the server detaches). The sum counts pages shared
    between processes (Postgres' shared buffers, forked copies) once per process, so it is
    an upper bound."""

    def __init__(self, state_dir: Path, interval_s: float = 0.2) -> None:
        self.state_dir = state_dir
        self.interval_s = interval_s
        self.peak_mb = {"all_mb": 0.0, "postgres_mb": 0.0, "largest_process_mb": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        from onering_assets.resources.embedded_pg import postmaster_pid

        procs = {p.pid: p for p in psutil.Process().children(recursive=True)}
        postgres: set[int] = set()
        pid = postmaster_pid(self.state_dir / "postgres")
        with contextlib.suppress(psutil.Error):
            if pid:
                server = psutil.Process(pid)
                for p in (server, *server.children(recursive=True)):
                    procs[p.pid] = p
                    postgres.add(p.pid)
        sizes: dict[int, float] = {}
        for p in procs.values():
            with contextlib.suppress(psutil.Error):
                sizes[p.pid] = p.memory_info().rss / 2**20
        sample = {
            "all_mb": sum(sizes.values()),
            "postgres_mb": sum(v for k, v in sizes.items() if k in postgres),
            "largest_process_mb": max(sizes.values(), default=0.0),
        }
        for key, value in sample.items():
            self.peak_mb[key] = round(max(self.peak_mb[key], value), 1)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()


def _status_mb(field: str) -> float:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith(f"{field}:")), f"{field}: 0 kB")
    return round(int(line.split()[1]) / 1024, 1)


def current_rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux ``/proc``)."""
    return _status_mb("VmRSS")


def reset_peak_rss() -> None:
    """Start this process's peak RSS (``VmHWM``) again from its current RSS (Linux 4.0+)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_since_reset_mb() -> float:
    """This process's peak RSS since ``reset_peak_rss`` (or its start), in MB."""
    return _status_mb("VmHWM")


def spread(values: Iterable[float]) -> dict[str, float | int] | None:
    """Median, min, max and count of ``values`` (None when empty)."""
    items = list(values)
    if not items:
        return None
    return {"median": statistics.median(items), "min": min(items), "max": max(items),
            "n": len(items)}  # fmt: skip


def median_or_none(values: Iterable[float]) -> float | None:
    """The median of ``values``, None if there are none."""
    items = list(values)
    return statistics.median(items) if items else None


# --------------------------------------------------------------------------- results


def machine(**versions: str) -> dict[str, Any]:
    """The machine a bench ran on; ``versions`` maps a key to a distribution to report."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **{key: version(dist) for key, dist in versions.items()},
        "platform": platform.platform(),
    }


def write_results(out: Path, payload: dict[str, Any], console: Any) -> None:
    """Write ``payload`` as JSON to ``out`` and log where (``payload["bench_seconds"]``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.log(f"wrote {out} (bench took {payload['bench_seconds']:.0f} s)")


# --------------------------------------------------------------------------- formatting


def mark(ok: bool) -> str:
    """A PASS/FAIL tag in rich markup."""
    return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"


def fmt_rate(value: float | None) -> str:
    """Rows per second as ``k/s`` or ``M/s``; ``-`` when unknown."""
    if value is None:
        return "-"
    return f"{value / 1e6:.2f} M/s" if value >= 1e6 else f"{value / 1e3:.1f} k/s"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_spread(low: float, high: float, n: int, cell: Callable[[float], str]) -> str:
    """`` (low-high, n=N)``, each bound written by ``cell``: the suffix after a median."""
    return f" ({cell(low)}-{cell(high)}, n={n})"
