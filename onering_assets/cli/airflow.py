"""`onering airflow …`: export the asset graph as DAGs and run them on a local Airflow 3."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from onering_assets.cli.common import From, Partition, To, app, err, fail, out, refuse
from onering_assets.errors import ConfigError, NothingSelectedError, OneRingError
from onering_assets.namespaces import ENV_GROUPS
from onering_assets.settings import PLATFORM_DIR, Settings

if TYPE_CHECKING:
    from airflow_bridge.client import AirflowClient

airflow_app = typer.Typer(
    help="Export the asset graph as Airflow DAGs and run them on a local Airflow 3.",
    no_args_is_help=True,
)
app.add_typer(airflow_app, name="airflow")
AIRFLOW_DIR = PLATFORM_DIR / "orchestration" / "airflow"
DAGS_DIR = AIRFLOW_DIR / "dags"


def env_dags_dir(env: str) -> Path:
    """Where ``airflow export --env ENV`` writes: a sub-folder Airflow also reads, not in git."""
    return DAGS_DIR / f"env_{env}"


def export_files(env: str | None = None):
    """Render config and the files `airflow export` writes, with one-line errors."""
    from airflow_bridge.config import for_env, load_config
    from airflow_bridge.errors import BridgeError
    from airflow_bridge.export import render, snapshot
    from onering_assets.definitions import build_definitions

    try:
        config = load_config(AIRFLOW_DIR / "bridge.yml")
        if env:
            config = for_env(config, env, ENV_GROUPS)
        return render(snapshot(build_definitions(Settings.from_env()), config), config)
    except (BridgeError, OneRingError) as e:
        raise fail(str(e)) from None


def _existing_env(env: str) -> None:
    """Refuse (exit 3) an environment that is not there: its DAGs would build nothing."""
    from onering_assets.change import envs
    from onering_assets.cli.plan import _clickhouse

    try:
        envs.check_name(env)
        with _clickhouse(Settings.from_env()) as client:
            exists = client is not None and env in envs.environments(client)
            if client is not None and exists:
                envs.check_complete(client, env)
    except OneRingError as e:
        raise refuse(e) from None
    if not exists:
        raise fail(
            f"No environment {env!r}: create it with `onering env create {env}` "
            f"(or `onering apply --env {env}`), then export its DAGs.",
            3,
        )


@airflow_app.command("export")
def airflow_export(
    check_only: Annotated[
        bool, typer.Option("--check", help="Fail if the committed DAG files are stale.")
    ] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="DAGs that build this environment (ids onering_ENV_silver, onering_ENV_gold) "
            "into dags/env_ENV/, triggered by hand.",
        ),
    ] = None,
) -> None:
    """Write the manifest and DAG files into platform/orchestration/airflow/dags/.

    With --env NAME: the DAGs of environment NAME's Silver and Gold, in dags/env_NAME/
    (not committed; Airflow reads sub-folders too). Their tasks tag each Dagster run
    onering/env=NAME, so they build into silver__NAME and gold__NAME; they have no
    schedule (the Gold DAG follows the environment's Silver DAG), and `onering env drop`
    removes them.
    """
    from airflow_bridge.export import stale_files, write

    if env is not None:
        _existing_env(env)
    files = export_files(env)
    folder = env_dags_dir(env) if env else DAGS_DIR
    if check_only:
        stale = stale_files(folder, files) if folder.exists() else sorted(files)
        if stale:
            again = f"onering airflow export --env {env}" if env else "onering airflow export"
            raise fail(f"stale DAG files: {', '.join(stale)}; run `{again}`.")
        out.print(f"{len(files)} files in {folder} are up to date")
        return
    changed = write(folder, files)
    out.print(
        f"wrote {len(changed)} of {len(files)} files in {folder}"
        if changed
        else f"{len(files)} files in {folder} already up to date"
    )
    if env:
        dags = sorted(n.removesuffix(".py") for n in files if n.endswith(".py"))
        first = next((d for d in dags if d.endswith("_silver")), dags[0])
        say(
            f"DAGs {', '.join(dags)} build environment {env}; e.g. `onering airflow trigger "
            f"{first} --partition YYYY-MM --wait` (a month Bronze holds) once `onering "
            "airflow up` loaded them."
        )


Port = Annotated[int, typer.Option("--port", help="Airflow api-server port on 127.0.0.1.")]


def local_airflow(port: int | None = None):
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


def say(message: str) -> None:
    out.print(message, highlight=False, soft_wrap=True)


@airflow_app.command("up")
def airflow_up(port: Port = 8080) -> None:
    """Start Airflow 3 (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1.

    Exports the DAGs first; the metadata DB, logs and admin password live under the state
    folder. Returns when every exported DAG is loaded; stop it with `onering airflow down`.
    """
    from airflow_bridge.errors import BridgeError
    from airflow_bridge.export import write

    changed = write(DAGS_DIR, export_files())
    for folder in sorted(DAGS_DIR.glob("env_*/")):  # environments' DAGs follow the graph too
        changed += [f"{folder.name}/{n}" for n in write(folder, export_files(folder.name[4:]))]
    if changed:
        say(f"exported {len(changed)} changed DAG file(s) to {DAGS_DIR}")
    local = local_airflow(port)
    try:
        state = local.up(say=say)
    except BridgeError as e:
        raise fail(str(e)) from None
    password = json.loads(local.passwords_file.read_text())["admin"]
    if state["started"]:
        say("started by starting Airflow:\n" + "\n".join(f"  {s}" for s in state["started"]))
    else:
        say("nothing ran because Airflow started: DAGs run when triggered (or by their schedule)")
    say(
        f"Airflow is up at {local.url} (user admin, password {password}) with DAGs "
        f"{', '.join(state['dags'])}.\nTrigger: onering airflow trigger onering_bronze "
        "--partition 2013-03 --wait; stop: onering airflow down"
    )


def check_selection(dag_id: str, select: str) -> None:
    """Refuse a --select that picks none of the DAG's assets (every task would just skip).

    The one-line refusal names the DAG's assets and the exported DAGs whose assets the
    selection does pick, if any.

    Raises:
        ConfigError: not a valid selection (exit 2).
        NothingSelectedError: exit 3, as `onering materialize` does.
    """
    from airflow_bridge.local import exported_plans, plan_folder
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import resolve_selection

    try:
        picked = resolve_selection(build_definitions(Settings.from_env()), select)
    except NothingSelectedError:
        picked = set()
    names = {k.to_user_string() for k in picked}
    owned = {
        dag: sorted(k for t in plan["tasks"] for k in t["asset_keys"])
        for dag, plan in exported_plans(plan_folder(DAGS_DIR, dag_id), recursive=False).items()
    }
    if names & set(owned[dag_id]):
        return
    elsewhere = [
        f"{d} ({', '.join(sorted(names & set(k)))})" for d, k in owned.items() if names & set(k)
    ]
    where = (
        f"it picks assets of {'; '.join(elsewhere)}: trigger "
        + ("that DAG instead." if len(elsewhere) == 1 else "those DAGs instead.")
        if elsewhere
        else f"it picks no exported asset (DAGs: {', '.join(owned)}; see `onering assets list`)."
    )
    raise NothingSelectedError(
        f"--select {select!r} picks none of {dag_id}'s assets ({', '.join(owned[dag_id])}); {where}"
    )


def check_unpaused(client: AirflowClient, dag_ids: list[str]) -> None:
    """Refuse to queue a run that would wait on a paused DAG (`up` keeps some paused)."""
    from airflow_bridge.errors import BridgeError

    try:
        paused = client.paused(dag_ids)
    except BridgeError as err:
        if "HTTP 404" not in str(err):
            raise
        raise BridgeError(
            f"Airflow has not loaded {', '.join(dag_ids)} yet: it reads its DAG folder every "
            "30 s. Run `onering airflow up` again (it waits for new DAGs and unpauses those "
            "with no run due), or wait and retry."
        ) from None
    if paused:
        raise BridgeError(
            f"{', '.join(paused)} {'is' if len(paused) == 1 else 'are'} paused in the local "
            "Airflow, so the run would wait: `onering airflow up` again unpauses a DAG it has "
            "not reviewed yet (an export made while Airflow ran) when no run of it is due, and "
            "says why it keeps one paused; or unpause it in the Airflow UI."
        )


def follow_cascade(
    client: AirflowClient, dag_id: str, run: dict[str, Any], partition: str | None, timeout: float
) -> tuple[str, str] | None:
    """Follow the run, then (for a partition) the asset-triggered runs downstream of it.

    Returns the DAG and run id of the first run that did not succeed (None when all did).
    """
    from airflow_bridge.local import downstream_dags

    done = client.follow(dag_id, run["dag_run_id"], timeout_s=timeout, say=say)
    say(f"{dag_id}: {done['state']}")
    if done["state"] != "success":
        return dag_id, run["dag_run_id"]
    if not partition:
        return None
    for downstream in downstream_dags(DAGS_DIR, dag_id):
        keyed = client.wait_for_keyed_run(
            downstream, partition, after=run["queued_at"], timeout_s=timeout
        )
        done = client.follow(downstream, keyed["dag_run_id"], timeout_s=timeout, say=say)
        say(f"{downstream}: {done['state']}")
        if done["state"] != "success":
            return downstream, keyed["dag_run_id"]
    return None


def _say_failures(client: AirflowClient, dag_id: str, run_id: str) -> None:
    """Each failed task of the run with the error lines of its log: the reason, here."""
    from airflow_bridge.errors import BridgeError

    try:
        failures = client.failures(dag_id, run_id)
    except BridgeError as e:
        err.print(f"(the failed tasks could not be read: {e})", highlight=False, markup=False)
        return
    for task, lines in sorted(failures.items()):
        err.print(f"{dag_id}.{task} failed:", highlight=False, markup=False)
        for line in lines or ["(no error line in its log)"]:
            err.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)


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
    local = local_airflow()
    try:
        check_trigger(DAGS_DIR, dag_id, partition)
        if select:
            check_selection(dag_id, select)
        if not local.running():
            raise BridgeError("Airflow is not running; start it with `onering airflow up`.")
        client = local.client()
        cascade = downstream_dags(DAGS_DIR, dag_id) if wait and partition else []
        check_unpaused(client, [dag_id, *cascade])
        run = client.trigger(dag_id, partition_key=partition, conf=conf)
        say(
            f"triggered {dag_id} run {run['dag_run_id']}"
            + (f" for partition {partition}" if partition else "")
            + f": {local.url}/dags/{dag_id}/runs/{run['dag_run_id']}"
        )
        if not wait:
            return
        failed = follow_cascade(client, dag_id, run, partition, timeout)
    except NothingSelectedError as e:
        raise fail(str(e), 3) from None
    except ConfigError as e:
        raise fail(str(e), 2) from None
    except BridgeError as e:
        raise fail(str(e)) from None
    if failed:
        failed_dag, failed_run = failed
        _say_failures(client, failed_dag, failed_run)
        raise fail(
            f"failed: {failed_dag}; its run: {local.url}/dags/{failed_dag}/runs/{failed_run}, "
            f"task logs under {local.home / 'logs'}"
        )


@airflow_app.command("status")
def airflow_status() -> None:
    """Which local Airflow components run, their health, and the latest run of each DAG."""
    from airflow_bridge.errors import BridgeError

    local = local_airflow()
    running = local.running()
    if not running:
        say(f"Airflow is not running (home {local.home}).")
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
        say(f"{name}: pid {pid}, {health.get(name.replace('-', '_'), {}).get('status', 'up')}")
    out.print(table)


@airflow_app.command("down")
def airflow_down() -> None:
    """Stop the local Airflow started by `onering airflow up`."""
    local = local_airflow()
    stopped = local.down(say=say)
    say(f"stopped {', '.join(stopped)}" if stopped else "Airflow was not running.")
