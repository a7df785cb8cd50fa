"""The `onering` command: browse, materialize and check the asset graph; query the stores."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from onering_assets.errors import OneRingError
from onering_assets.settings import LAYER_ORDER, PLATFORM_DIR, Settings

app = typer.Typer(
    help="OneRing: a medallion data platform as code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
assets_app = typer.Typer(help="Browse the asset graph.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")
out = Console()
err = Console(stderr=True)

Select = Annotated[
    str | None,
    typer.Option(
        "--select",
        "-s",
        help="Dagster selection, e.g. 'key:\"gold/route_performance\"' or 'group:silver'.",
    ),
]
Partition = Annotated[
    str | None, typer.Option("--partition", "-p", help="One month, e.g. 2013-03.")
]
From = Annotated[str | None, typer.Option("--from", help="First month of a range.")]
To = Annotated[str | None, typer.Option("--to", help="Last month of a range.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _load():
    """Settings, definitions and the persistent instance, with one-line errors."""
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import instance_for

    settings = Settings.from_env()
    return settings, build_definitions(settings), instance_for(settings)


def _print_summary(summary, title: str) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("asset")
    table.add_column("rows", justify="right")
    table.add_column("rejected", justify="right")
    for key in sorted(summary.rows, key=lambda k: (LAYER_ORDER.get(k.split("/")[0], 9), k)):
        rows, rejected = summary.rows[key], summary.rejected.get(key)
        table.add_row(
            key,
            f"{rows:,}" if isinstance(rows, int) else "-",
            f"{rejected:,}" if isinstance(rejected, int) else "",
        )
    if summary.rows:
        out.print(table)
    failed = [c for c in summary.checks if not c[2]]
    out.print(
        f"checks: {summary.checks_passed} passed, {len(failed)} failed; "
        f"time {summary.seconds:.1f} s; run {summary.run_id}"
    )
    for asset, check, _, description in failed:
        out.print(f"  [red]failed[/red] {asset}:{check} — {description}", highlight=False)
    for failure in summary.failures:
        out.print(f"  [red]step failed[/red] {failure.splitlines()[0]}", highlight=False)


Tags = Annotated[list[str] | None, typer.Option("--tag", help="Run tag KEY=VALUE (repeatable).")]


def _tags(values: list[str] | None) -> dict[str, str]:
    tags = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise OneRingError(f"--tag {value!r}: use KEY=VALUE.")
        tags[key] = val
    return tags


def _report(summary, defs, title: str, as_json: bool) -> None:
    """The run summary as a table, or as one line of JSON for scripts and Airflow."""
    from onering_assets.runner import blocking_by_check

    if as_json:
        sys.stdout.write(json.dumps(summary.to_dict(blocking_by_check(defs)), default=str) + "\n")
    else:
        _print_summary(summary, title)


@app.command()
def materialize(
    select: Select = None,
    partition: Partition = None,
    start: From = None,
    end: To = None,
    upstream: Annotated[
        bool, typer.Option(help="Also run upstream assets never materialized for these months.")
    ] = True,
    checks: Annotated[bool, typer.Option(help="Run the assets' checks with them.")] = True,
    tag: Tags = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Materialize assets (all by default) over one month, a range, or every month."""
    from onering_assets.runner import execute, missing_upstream, partition_range, resolve_selection

    try:
        first, last = partition_range(partition, start, end)
        _, defs, instance = _load()
        keys = resolve_selection(defs, select)
        extra = missing_upstream(defs, instance, keys, first, last) if upstream else set()
        if extra:
            names = ", ".join(sorted(k.to_user_string() for k in extra))
            err.print(f"also materializing upstream never built for {first}..{last}: {names}")
        err.print(f"materializing {len(keys | extra)} assets for {first}..{last}")
        summary = execute(
            defs,
            instance,
            assets=keys | extra,
            checks=None if checks else set(),
            first=first,
            last=last,
            tags=_tags(tag),
            progress=not as_json,
        )
    except OneRingError as e:
        raise fail(str(e)) from None
    _report(summary, defs, "materialized", as_json)
    if not summary.success:
        raise typer.Exit(1)


@app.command()
def check(
    select: Select = None,
    tag: Tags = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run asset checks alone, against what is published."""
    from onering_assets.runner import check_keys, execute, resolve_selection

    try:
        _, defs, instance = _load()
        keys = resolve_selection(defs, select)
        summary = execute(
            defs,
            instance,
            assets=set(),
            checks=check_keys(defs, keys),
            tags=_tags(tag),
            progress=not as_json,
        )
    except OneRingError as e:
        raise fail(str(e)) from None
    _report(summary, defs, "checks", as_json)
    if not summary.success or any(not c[2] for c in summary.checks):
        raise typer.Exit(1)


@assets_app.command("list")
def assets_list(select: Select = None) -> None:
    """Every asset with its group, partitions, checks and latest materialization."""
    from onering_assets.browse import asset_rows
    from onering_assets.runner import resolve_selection

    try:
        _, defs, instance = _load()
        keys = resolve_selection(defs, select)
    except OneRingError as e:
        raise fail(str(e)) from None
    table = Table()
    for column in ("asset", "group", "partitions", "checks", "last materialized", "description"):
        table.add_column(column, overflow="fold")
    for row in asset_rows(defs, instance, keys):
        table.add_row(*row)
    out.print(table)


@assets_app.command("show")
def assets_show(
    key: Annotated[str, typer.Argument(help="Asset key, e.g. gold/route_performance.")],
) -> None:
    """Description, owners, columns, lineage, checks and the latest run of one asset."""
    from onering_assets.browse import show_asset

    try:
        _, defs, instance = _load()
        show_asset(out, defs, instance, key)
    except OneRingError as e:
        raise fail(str(e)) from None


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One read-only statement.")],
    target: Annotated[str, typer.Option(help="silver (ClickHouse) or gold (Postgres).")] = "gold",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run a read-only query against Silver or Gold."""
    from onering_assets.browse import run_query
    from onering_assets.query import render

    if target not in ("silver", "gold") or fmt not in ("table", "csv", "json"):
        raise fail("--target is silver or gold; --format is table, csv or json.", 2)
    try:
        from onering_assets.definitions import resources_for

        columns, rows = run_query(resources_for(Settings.from_env()), target, statement)
    except OneRingError as e:
        raise fail(str(e), 2) from None
    if fmt != "table":
        sys.stdout.write(render(columns, rows, fmt))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


@app.command()
def dev(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 3000) -> None:
    """Start the Dagster UI (and daemon) on 127.0.0.1."""
    from onering_assets.devserver import command
    from onering_assets.runner import instance_for

    instance_for(Settings.from_env())
    err.print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    raise typer.Exit(subprocess.call(command(port), env=os.environ.copy()))


@app.command()
def reset(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete all local state (lake, chDB, Postgres, Dagster history, local Airflow)."""
    settings = Settings.from_env()
    if settings.profile != "local":
        raise fail("reset only deletes local state; drop compose data with its own tools.", 2)
    if not settings.state_dir.exists():
        out.print(f"nothing to reset: {settings.state_dir} does not exist")
        return
    if not yes and not typer.confirm(f"Delete {settings.state_dir}?"):
        raise typer.Exit(1)
    from onering_assets.resources.postgres import stop_embedded

    if (settings.state_dir / "airflow").exists():
        _local_airflow().down(say=_say)
    stop_embedded(settings.postgres_dir)
    shutil.rmtree(settings.state_dir)
    out.print(f"deleted {settings.state_dir}")


@app.command()
def demo() -> None:
    """Materialize everything for every month, then print what was built."""
    started = time.perf_counter()
    from onering_assets.runner import execute, partition_range

    try:
        settings, defs, instance = _load()
        first, last = partition_range(None, None, None)
        keys = set(defs.resolve_asset_graph().materializable_asset_keys)
        err.print(f"building {len(keys)} assets for {first}..{last} into {settings.state_dir}")
        summary = execute(defs, instance, assets=keys, first=first, last=last)
    except OneRingError as e:
        raise fail(str(e)) from None
    summary.seconds = time.perf_counter() - started
    _print_summary(summary, "OneRing demo: Bronze -> Silver -> Gold")
    out.print(
        "Browse the asset graph: [bold]make dev[/bold] (Dagster UI on http://127.0.0.1:3000), "
        'or `onering assets list`; query Gold: onering sql "SELECT * FROM '
        'gold.carrier_monthly_performance LIMIT 5"'
    )
    if not summary.success:
        raise typer.Exit(1)


airflow_app = typer.Typer(
    help="Export the asset graph as Airflow DAGs and run them on a local Airflow 3.",
    no_args_is_help=True,
)
app.add_typer(airflow_app, name="airflow")
AIRFLOW_DIR = PLATFORM_DIR / "orchestration" / "airflow"
DAGS_DIR = AIRFLOW_DIR / "dags"


def _export_files():
    """Render config and the files `airflow export` writes, with one-line errors."""
    from airflow_bridge.config import load_config
    from airflow_bridge.errors import BridgeError
    from airflow_bridge.export import render, snapshot
    from onering_assets.definitions import build_definitions

    try:
        config = load_config(AIRFLOW_DIR / "bridge.yml")
        return render(snapshot(build_definitions(Settings.from_env()), config), config)
    except (BridgeError, OneRingError) as e:
        raise fail(str(e)) from None


@airflow_app.command("export")
def airflow_export(
    check_only: Annotated[
        bool, typer.Option("--check", help="Fail if the committed DAG files are stale.")
    ] = False,
) -> None:
    """Write the manifest and DAG files into platform/orchestration/airflow/dags/."""
    from airflow_bridge.export import stale_files, write

    files = _export_files()
    if check_only:
        stale = stale_files(DAGS_DIR, files)
        if stale:
            raise fail(f"stale DAG files: {', '.join(stale)}; run `onering airflow export`.")
        out.print(f"{len(files)} files in {DAGS_DIR} are up to date")
        return
    changed = write(DAGS_DIR, files)
    out.print(
        f"wrote {len(changed)} of {len(files)} files in {DAGS_DIR}"
        if changed
        else f"{len(files)} files in {DAGS_DIR} already up to date"
    )


Port = Annotated[int, typer.Option("--port", help="Airflow api-server port on 127.0.0.1.")]


def _local_airflow(port: int | None = None):
    """The local Airflow of this state folder; children get absolute OneRing paths."""
    from airflow_bridge.local import DEFAULT_PORT, LocalAirflow

    settings = Settings.from_env()
    os.environ["ONERING_STATE_DIR"] = str(settings.state_dir)
    if os.environ.get("ONERING_SOURCE_DIR"):
        os.environ["ONERING_SOURCE_DIR"] = str(Path(os.environ["ONERING_SOURCE_DIR"]).resolve())
    home = settings.state_dir / "airflow"
    port_file = home / "onering-port"
    if port is None:
        port = int(port_file.read_text()) if port_file.exists() else DEFAULT_PORT
    home.mkdir(parents=True, exist_ok=True)
    port_file.write_text(str(port))
    return LocalAirflow(home=home, dags_folder=DAGS_DIR, port=port)


def _say(message: str) -> None:
    out.print(message, highlight=False, soft_wrap=True)


@airflow_app.command("up")
def airflow_up(port: Port = 8080) -> None:
    """Start Airflow 3 (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1.

    Exports the DAGs first; the metadata DB, logs and admin password live under the state
    folder. Returns when every exported DAG is loaded; stop it with `onering airflow down`.
    """
    from airflow_bridge.errors import BridgeError
    from airflow_bridge.export import write

    changed = write(DAGS_DIR, _export_files())
    if changed:
        _say(f"exported {len(changed)} changed DAG file(s) to {DAGS_DIR}")
    local = _local_airflow(port)
    try:
        state = local.up(say=_say)
    except BridgeError as e:
        raise fail(str(e)) from None
    password = json.loads(local.passwords_file.read_text())["admin"]
    _say(
        f"Airflow is up at {local.url} (user admin, password {password}) with DAGs "
        f"{', '.join(state['dags'])}.\nTrigger: onering airflow trigger onering_bronze "
        "--partition 2013-03 --wait; stop: onering airflow down"
    )


@airflow_app.command("trigger")
def airflow_trigger(
    dag_id: Annotated[str, typer.Argument(help="An exported DAG, e.g. onering_bronze.")],
    partition: Partition = None,
    start: From = None,
    end: To = None,
    select: Annotated[
        str | None,
        typer.Option("--select", "-s", help="Only these assets (Dagster selection syntax)."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Follow the run and the asset-triggered runs downstream."),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits per DAG run.")] = 1800,
) -> None:
    """Trigger a DAG run on the local Airflow.

    --partition runs one partition as an Airflow partition key, which the asset-triggered
    downstream DAGs inherit; --from/--to and --select go in dag_run.conf (this DAG only).
    """
    from airflow_bridge.errors import BridgeError
    from airflow_bridge.local import check_trigger, downstream_dags

    if partition and (start or end):
        raise fail("Use --partition or --from/--to, not both.", 2)
    conf = {k: v for k, v in {"from": start, "to": end, "select": select}.items() if v}
    local = _local_airflow()
    try:
        check_trigger(DAGS_DIR, dag_id, partition)
        if not local.running():
            raise BridgeError("Airflow is not running; start it with `onering airflow up`.")
        client = local.client()
        run = client.trigger(dag_id, partition_key=partition, conf=conf)
        _say(
            f"triggered {dag_id} run {run['dag_run_id']}"
            + (f" for partition {partition}" if partition else "")
            + f": {local.url}/dags/{dag_id}/runs/{run['dag_run_id']}"
        )
        if not wait:
            return
        failed = []
        done = client.follow(dag_id, run["dag_run_id"], timeout_s=timeout, say=_say)
        _say(f"{dag_id}: {done['state']}")
        if done["state"] != "success":
            failed.append(dag_id)
        elif partition:
            for downstream in downstream_dags(DAGS_DIR, dag_id):
                keyed = client.wait_for_keyed_run(
                    downstream, partition, after=run["queued_at"], timeout_s=timeout
                )
                done = client.follow(downstream, keyed["dag_run_id"], timeout_s=timeout, say=_say)
                _say(f"{downstream}: {done['state']}")
                if done["state"] != "success":
                    failed.append(downstream)
                    break
    except BridgeError as e:
        raise fail(str(e)) from None
    if failed:
        raise fail(f"failed: {', '.join(failed)}; task logs under {local.home / 'logs'}")


@airflow_app.command("status")
def airflow_status() -> None:
    """Which local Airflow components run, their health, and the latest run of each DAG."""
    from airflow_bridge.errors import BridgeError

    local = _local_airflow()
    running = local.running()
    if not running:
        _say(f"Airflow is not running (home {local.home}).")
        raise typer.Exit(1)
    try:
        client = local.client()
        health = client.get("/monitor/health")
        table = Table(title=f"Airflow at {local.url}", title_justify="left")
        for column in ("DAG", "paused", "latest run", "partition", "state"):
            table.add_column(column)
        for dag in client.get("/dags", limit=1000)["dags"]:
            runs = client.get(f"/dags/{dag['dag_id']}/dagRuns", order_by="-id", limit=1)
            latest = runs["dag_runs"][0] if runs["dag_runs"] else {}
            table.add_row(
                dag["dag_id"],
                str(dag["is_paused"]),
                latest.get("dag_run_id", "-"),
                latest.get("partition_key") or "-",
                latest.get("state", "-"),
            )
    except BridgeError as e:
        raise fail(str(e)) from None
    for name, pid in sorted(running.items()):
        _say(f"{name}: pid {pid}, {health.get(name.replace('-', '_'), {}).get('status', 'up')}")
    out.print(table)


@airflow_app.command("down")
def airflow_down() -> None:
    """Stop the local Airflow started by `onering airflow up`."""
    local = _local_airflow()
    stopped = local.down(say=_say)
    _say(f"stopped {', '.join(stopped)}" if stopped else "Airflow was not running.")


def main() -> None:
    """Run the command, then exit without tearing the interpreter down.

    Once GX and pandas are loaded, Python's module teardown at exit takes 1.3-1.4 s on this
    machine (measured: output printed -> process gone), which the Airflow bridge's
    subprocess mode pays on every task. All work is done and committed by then, so this
    runs the atexit handlers (logging flushes there), flushes stdout/stderr and leaves.
    """
    code: int | str | None = 0
    try:
        app()
    except SystemExit as done:
        code = done.code
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    os._exit(code or 0)


if __name__ == "__main__":
    main()
