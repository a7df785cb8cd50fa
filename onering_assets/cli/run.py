"""`onering materialize`, `check`, `demo` and `reset`: runs and local state.

Exit codes of `materialize` and `check` (the Airflow bridge's subprocess mode reads them):
0 success; 1 the run failed (with ``--json`` the summary says whether a retry may help)
or a store error stopped it before it began; 2 invalid input (selection, partition range),
which a retry cannot fix; 3 the selection is valid but picks no asset. SIGTERM during the
run ends the Dagster run CANCELED, then the command exits 1 with its summary (retryable).
`reset` exits 2, with one line and nothing deleted, while something live uses the state.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from onering_assets.cli.common import (
    From,
    Partition,
    Select,
    Tags,
    To,
    announce_source,
    app,
    err,
    fail,
    load,
    out,
    parse_tags,
    refuse,
)
from onering_assets.cli.report import print_summary, report
from onering_assets.errors import ConfigError, OneRingError
from onering_assets.namespaces import ENV_TAG
from onering_assets.settings import Settings

EXIT_IN_USE = 2


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
    from onering_assets.runner import (
        execute,
        instance_for,
        missing_upstream,
        partition_range,
        resolve_selection,
    )

    try:
        first, last = partition_range(partition, start, end)
        settings, defs, instance = load()
        tags = parse_tags(tag)
        env = tags.get(ENV_TAG, "")
        keys = resolve_selection(defs, select)
        explicit = bool(partition or start or end)
        if env:  # its own instance; it builds what is selected, from production's Bronze
            instance, upstream = instance_for(settings, env), False
        extra = missing_upstream(defs, instance, keys, first, last) if upstream else set()
        if extra:
            names = ", ".join(sorted(k.to_user_string() for k in extra))
            err.print(f"also materializing upstream never built for {first}..{last}: {names}")
        line = scope(defs, keys | extra, first, last, explicit)
        if env:
            line += f", into environment {env} (silver__{env}, gold__{env})"
        if any(k.path[0] == "bronze" for k in keys | extra):
            announce_source(settings, defs)
        err.print(line, highlight=False, soft_wrap=True)
        summary = execute(
            defs,
            instance,
            assets=keys | extra,
            checks=None if checks else set(),
            first=first,
            last=last,
            tags=tags,
            progress=not as_json,
        )
    except OneRingError as e:
        raise refuse(e) from None
    report(summary, defs, "materialized", as_json)
    if not summary.success:
        raise typer.Exit(1)


def scope(defs, keys: set, first: str, last: str, explicit: bool) -> str:
    """What a run covers, in one line; months given for only unpartitioned assets: refused.

    An unpartitioned asset (a whole table) is always built whole, whatever the months.
    """
    graph = defs.resolve_asset_graph()
    whole = sorted(k.to_user_string() for k in keys if graph.get(k).partitions_def is None)
    monthly = len(keys) - len(whole)
    months = first if first == last else f"{first}..{last}"
    if explicit and not monthly:
        raise ConfigError(
            f"{', '.join(whole)} {'is' if len(whole) == 1 else 'are'} not partitioned (built "
            "whole every time): drop --partition/--from/--to."
        )
    parts = [f"{monthly} monthly for {months}"] if monthly else []
    if whole:
        named = f" ({', '.join(whole)}: not partitioned)" if explicit else ""
        parts.append(f"{len(whole)} built whole{named}")
    noun = "asset" if len(keys) == 1 else "assets"
    return f"materializing {len(keys)} {noun}: {', '.join(parts)}"


@app.command()
def check(
    select: Select = None,
    partition: Partition = None,
    start: From = None,
    end: To = None,
    tag: Tags = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run asset checks alone, against what is published (every published month by default).

    Prints one row per check: asset, check, result (passed, FAILED for a blocking check,
    warn for a non-blocking one) and its summary.
    """
    from onering_assets.runner import (
        check_keys,
        execute,
        instance_for,
        partition_range,
        resolve_selection,
    )

    try:
        explicit = bool(partition or start or end)
        first, last = partition_range(partition, start, end) if explicit else (None, None)
        settings, defs, instance = load()
        tags = parse_tags(tag)
        if tags.get(ENV_TAG):
            instance = instance_for(settings, tags[ENV_TAG])
        keys = resolve_selection(defs, select)
        if first and last:
            scope(defs, keys, first, last, explicit)
        summary = execute(
            defs,
            instance,
            assets=set(),
            checks=check_keys(defs, keys),
            first=first,
            last=last,
            tags=tags,
            progress=not as_json,
        )
    except OneRingError as e:
        raise refuse(e) from None
    report(summary, defs, "checks", as_json)
    if not summary.success or any(not c[2] for c in summary.checks):
        raise typer.Exit(1)


@app.command()
def reset(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete all local state (lake, chDB, Postgres, Dagster history, local Airflow).

    Refuses (exit 2, one line, nothing deleted) while anything live uses the state folder:
    a held store lock, a process using its embedded Postgres, the local Airflow, or a
    OneRing, Dagster (`onering dev`) or Airflow process on it. An embedded Postgres left
    running with no user is stopped first. What is and is not detected:
    onering_assets/resources/state_lock.py.
    """
    from onering_assets.resources.state_lock import StateInUseError, delete_state, exclusive

    settings = Settings.from_env()
    if settings.profile != "local":
        raise fail("reset only deletes local state; drop compose data with its own tools.", 2)
    if not settings.state_dir.exists():
        out.print(f"nothing to reset: {settings.state_dir} does not exist")
        return
    try:
        if not yes:
            with exclusive(settings, make_locks=False):  # refuse before asking (and again)
                pass
            if not typer.confirm(f"Delete {settings.state_dir}?"):
                raise typer.Exit(1)
        delete_state(settings)
    except StateInUseError as e:
        raise fail(str(e), EXIT_IN_USE) from None
    out.print(f"deleted {settings.state_dir}")


@app.command()
def demo() -> None:
    """Materialize everything for every month, then print what was built."""
    started = time.perf_counter()
    from onering_assets.runner import execute, partition_range

    try:
        settings, defs, instance = load()
        first, last = partition_range(None, None, None)
        # Not the stream group (it lands what `onering stream replay` published, and runs the
        # Flink job) nor the Airbyte connections: each runs on demand (docs/streaming.md).
        graph = defs.resolve_asset_graph()
        keys = {
            k for k in graph.materializable_asset_keys if k.path[0] not in ("stream", "airbyte")
        }
        err.print(f"building {len(keys)} assets for {first}..{last} into {settings.state_dir}")
        summary = execute(defs, instance, assets=keys, first=first, last=last)
    except OneRingError as e:
        raise fail(str(e)) from None
    summary.seconds = time.perf_counter() - started
    print_summary(summary, "OneRing demo: Bronze -> Silver -> Gold")
    out.print(
        "Browse the asset graph: [bold]make dev[/bold] (Dagster UI on http://127.0.0.1:3000), "
        'or `onering assets list`; query Gold: onering sql "SELECT * FROM '
        'gold.carrier_monthly_performance LIMIT 5"; reach it from psql or a BI tool: '
        "onering stores up",
        highlight=False,
        soft_wrap=True,
    )
    if not summary.success:
        raise typer.Exit(1)
