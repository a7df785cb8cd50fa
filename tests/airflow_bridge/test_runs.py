"""How a task's run ends: the summary's verdict, the CLI's exit codes, and killed children.

The same verdict decides every mode; these tests build it from real Dagster runs, the real
`onering` CLI and real processes (the end-to-end Airflow versions are in test_retries.py).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from airflow_bridge.errors import (
    ChecksFailedError,
    InvalidRunRequestError,
    NothingSelectedError,
    RunFailedError,
)
from airflow_bridge.processes import alive
from airflow_bridge.runs import (
    EXIT_INVALID,
    EXIT_NOTHING_SELECTED,
    CliRun,
    cli_command,
    run_in_process,
    verdict,
)
from onering_assets.cli import common as cli_run
from onering_assets.errors import StoreBusyError
from onering_assets.runner import execute


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="bad_data", blocking=True)])
def bad_data() -> Iterator[object]:
    """Fails its blocking check the way factory.build_table_asset does."""
    yield dg.AssetCheckResult(check_name="positive", passed=False, description="-1 < 0")
    raise dg.Failure(
        description="bad_data: 1 blocking check(s) failed",
        metadata={"failed_checks": ["positive"]},
        allow_retries=False,
    )


@dg.asset
def busy_store() -> None:
    raise StoreBusyError("The embedded ClickHouse store is in use by process 1.")


@dg.asset(check_specs=[dg.AssetCheckSpec("soft", asset="fine", blocking=False)])
def fine() -> Iterator[object]:
    yield dg.MaterializeResult(metadata={"rows": 3})
    yield dg.AssetCheckResult(check_name="soft", passed=False, description="a warning")


def summary_of(asset: dg.AssetsDefinition) -> dict:
    with dg.instance_for_test() as instance:
        defs = dg.Definitions(assets=[asset])
        result = execute(defs, instance, assets=asset.keys, progress=False)
        blocking = {(asset.key.to_user_string(), s.name): s.blocking for s in asset.check_specs}
        return result.to_dict(blocking)


def test_a_failed_blocking_check_is_not_retryable() -> None:
    summary = summary_of(bad_data)
    assert summary["failed_checks"] == ["bad_data:positive"]
    assert (summary["success"], summary["retryable"], summary["errors"]) == (False, False, [])
    with pytest.raises(ChecksFailedError, match="check bad_data:positive failed: -1 < 0"):
        verdict(summary)


def test_any_other_failure_is_retryable() -> None:
    summary = summary_of(busy_store)
    assert (summary["success"], summary["retryable"], summary["failed_checks"]) == (
        False,
        True,
        [],
    )
    assert "is in use by process 1" in summary["errors"][0]
    with pytest.raises(RunFailedError, match="is in use by process 1"):
        verdict(summary)


def test_a_failed_non_blocking_check_passes_and_a_checks_only_failure_fails() -> None:
    summary = summary_of(fine)
    assert summary["success"] and not summary["retryable"]
    verdict(summary)  # a warning, not a failure
    # A checks-only run succeeds in Dagster even when a blocking check fails.
    checks_only = {**summary, "checks": [{**summary["checks"][0], "blocking": True}]}
    checks_only["failed_checks"] = ["fine:soft"]
    with pytest.raises(ChecksFailedError):
        verdict(checks_only)


def test_cli_exit_codes_match_the_bridge() -> None:
    assert (cli_run.EXIT_INVALID, cli_run.EXIT_NOTHING_SELECTED) == (
        EXIT_INVALID,
        EXIT_NOTHING_SELECTED,
    )


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        ("import sys; print('boom', file=sys.stderr); sys.exit(3)", NothingSelectedError, "boom"),
        ("import sys; print('bad', file=sys.stderr); sys.exit(2)", InvalidRunRequestError, "bad"),
        ("import sys; sys.exit(1)", RunFailedError, "exited 1 without a summary"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", RunFailedError, "exited -9"),
    ],
)
def test_a_cli_that_prints_no_summary_is_judged_by_its_exit_code(
    code: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CliRun(python(code)).run()


def test_a_successful_cli_run_logs_its_catalog_lines(caplog: pytest.LogCaptureFixture) -> None:
    """In subprocess mode a catalog outage reaches the task log although the run succeeded."""
    code = (
        "import sys; print('publishing run r1 to OpenMetadata…', file=sys.stderr); "
        "print('catalog: down; run r1 stays pending', file=sys.stderr); "
        "print('other noise', file=sys.stderr); print('{\"success\": true}')"
    )
    with caplog.at_level("INFO", logger="airflow_bridge.runs"):
        assert CliRun(python(code)).run() == {"success": True}
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "publishing run r1 to OpenMetadata…"),
        ("WARNING", "catalog: down; run r1 stays pending"),
    ]


def test_the_cli_narrows_a_conf_selection_to_the_tasks_keys(tmp_path: Path) -> None:
    cmd = cli_command(sys.executable, ["a/b", "c/d"], None, None, {}, "assets", "group:x")
    assert cmd[cmd.index("--select") + 1] == '(group:x) and (key:"a/b" or key:"c/d")'
    env = {**os.environ, "ONERING_STATE_DIR": str(tmp_path / "state")}
    for select, code in (("kind:nope", EXIT_NOTHING_SELECTED), ("key:", EXIT_INVALID)):
        command = cli_command(sys.executable, ["bronze/flights"], None, None, {}, "assets", select)
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == code, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr


def test_in_process_resolves_the_conf_selection_with_dagster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONERING_STATE_DIR", str(tmp_path / "state"))
    keys = ["bronze/flights", "bronze/weather"]
    with pytest.raises(NothingSelectedError, match="matches no asset it may run here"):
        run_in_process(keys, None, None, {}, "assets", select="group:gold")
    with pytest.raises(InvalidRunRequestError, match="Cannot parse selection"):
        run_in_process(keys, None, None, {}, "assets", select="group:gold and")


def test_terminate_escalates_to_sigkill_for_a_cli_that_ignores_sigterm() -> None:
    stubborn = CliRun(
        python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    )
    started = time.monotonic()
    threading.Timer(1.0, stubborn.terminate, kwargs={"grace_s": 1.0}).start()
    with pytest.raises(RunFailedError, match="exited -9"):
        stubborn.run()
    assert time.monotonic() - started < 10


def test_the_cli_child_dies_with_a_task_process_killed_outright(tmp_path: Path) -> None:
    """SIGKILL gives the task process no on_kill; the child must not be orphaned."""
    pid_file = tmp_path / "child.pid"
    child_code = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    task_script = tmp_path / "task.py"
    task_script.write_text(
        "import sys\n"
        "from airflow_bridge.runs import CliRun\n"
        f"CliRun([sys.executable, '-c', {child_code!r}]).run()\n"
    )
    task = subprocess.Popen([sys.executable, str(task_script)], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert alive(child)
    task.send_signal(signal.SIGKILL)
    task.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


@dg.asset
def killed_mid_step() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # what Airflow sends a task it kills
    time.sleep(30)


def test_sigterm_during_a_run_ends_it_canceled_and_retryable() -> None:
    """Dagster alone records an interrupt it was not asked for as FAILURE (or leaves the
    run STARTED if the process dies); the runner records the kill as CANCELED."""
    keep = signal.getsignal(signal.SIGTERM)

    def ours(*_: object) -> None:  # the caller's own handler (Airflow's, in a task)
        pass

    signal.signal(signal.SIGTERM, ours)
    try:
        with dg.instance_for_test() as instance:
            defs = dg.Definitions(assets=[killed_mid_step])
            started = time.monotonic()
            result = execute(defs, instance, assets=killed_mid_step.keys, progress=False)
            assert time.monotonic() - started < 20  # interrupted, not slept through
            run = instance.get_run_by_id(result.run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.CANCELED
            summary = result.to_dict()
            assert (summary["status"], summary["retryable"]) == ("CANCELED", True)
            # The caller's SIGTERM handler is back (Dagster leaves its own installed).
            assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, keep)
