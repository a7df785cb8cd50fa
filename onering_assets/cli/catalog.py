"""`onering catalog publish|status`: the asset graph and the pending runs into the catalog.

Exit codes of `publish`: 0 published (or the requests written, for a dry run); 1 the
catalog failed in a way a later publish may get past (unreachable, 5xx, timed out, another
publish holding the lock): the runs stay pending; 2 a failure a retry cannot fix (invalid
settings, the publisher's environment missing, the catalog refusing the token or a request).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from onering_assets.cli.common import EXIT_INVALID, app, err, fail, load, out, refuse
from onering_assets.errors import ConfigError, OneRingError
from onering_assets.settings import CatalogSettings, Settings, redact_url

catalog_app = typer.Typer(
    help="Publish the asset graph, column lineage, runs and checks to the catalog "
    "(OpenMetadata via ONERING_OPENMETADATA_URL; OpenLineage via ONERING_OPENLINEAGE_URL or "
    "ONERING_OPENLINEAGE_FILE).",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")
EXIT_RETRYABLE = 1
SHOWN = 20  # pending runs listed by `status`


def _catalog_settings() -> CatalogSettings:
    try:
        return CatalogSettings.from_env()
    except ConfigError as e:
        raise refuse(e) from None


@catalog_app.command("publish")
def catalog_publish(
    dry_run: Annotated[
        Path | None,
        typer.Option(
            "--dry-run",
            metavar="FILE",
            help="Write OpenMetadata's requests (method, path, body) to FILE; send nothing. "
            "Without a server (ONERING_OPENMETADATA_URL unset) they go to "
            "<state>/catalog/requests.json.",
        ),
    ] = None,
) -> None:
    """Publish the graph and every pending run (oldest first, in batches), each run once.

    Exit 0 published (or requests written), 1 the catalog failed but a later publish may
    succeed (the runs stay pending), 2 a failure a retry cannot fix.
    """
    from onering_assets.lineage.outbox import outbox_for
    from onering_assets.lineage.publish import plural, publish_pending

    config = _catalog_settings()
    try:
        settings, defs, instance = load()
    except OneRingError as e:
        raise refuse(e) from None
    outbox = outbox_for(settings.state_dir)
    # An explicit dry run sends nothing anywhere; without a server, OpenMetadata's part is
    # a dry run and a configured OpenLineage target still gets the events.
    explicit = dry_run is not None
    if dry_run is None and config.url is None:
        dry_run = outbox.requests_path
        err.print("ONERING_OPENMETADATA_URL is not set: a dry run", highlight=False)
    while True:
        try:
            result = publish_pending(
                defs,
                instance,
                outbox,
                config,
                dry_run=dry_run,
                openlineage=not explicit,
                # Asked for: every attempt may take its full time-out (a run's end has a budget).
                budget_s=max(config.budget_s, config.timeout_s * config.attempts + 30),
            )
        except OneRingError as e:  # the document cannot be built (the bridge's configuration)
            raise refuse(e) from None
        counts = result.counts
        what = ", ".join(
            [f"{counts.get(k, 0)} {k}" for k in ("entities", "edges")]
            + [plural(counts.get("runs", 0), "run")]
        )
        if not result.ok:
            code = EXIT_RETRYABLE if result.retryable else EXIT_INVALID
            pending = plural(result.pending, "run")
            raise fail(f"catalog: {result.message} ({what}; {pending} pending)", code)
        out.print(_done_line(result, what), highlight=False, soft_wrap=True)
        _print_warnings(result.summary.get("warnings") or [])
        if dry_run is not None or not result.runs or not result.pending:
            break


def _print_warnings(warnings: list[Any], shown: int = 10) -> None:
    """The publisher's warnings (an owner the catalog lacks, Bronze checks left out…)."""
    for warning in warnings[:shown]:
        err.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    if len(warnings) > shown:
        err.print(
            f"… and {len(warnings) - shown} more in the last publish "
            "(`onering catalog status --json`)",
            highlight=False,
            markup=False,
        )


def _done_line(result: Any, what: str) -> str:
    from onering_assets.lineage.publish import plural

    summary = result.summary
    line = f"{result.message}: {what}, {summary.get('requests', 0)} requests"
    if "writes" in summary and not result.dry_run:
        line += (
            f" ({summary['writes']} writes: {summary.get('created', 0)} created, "
            f"{summary.get('updated', 0)} updated, {summary.get('deleted', 0)} deleted; "
            f"{summary.get('unchanged', 0)} unchanged)"
        )
    return f"{line} in {result.seconds:.1f} s; {plural(result.pending, 'run')} pending"


@catalog_app.command("status")
def catalog_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Where runs are published, which runs are pending (oldest first), the last publish."""
    from onering_assets.lineage.outbox import OPENLINEAGE, OPENMETADATA, outbox_for

    config = _catalog_settings()
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        raise refuse(e) from None
    outbox = outbox_for(settings.state_dir)
    targets = [OPENMETADATA] * bool(config.url) + [OPENLINEAGE] * bool(config.openlineage)
    pending = outbox.to_send(targets)
    status = {
        "openmetadata": config.url and redact_url(config.url),
        "openlineage": config.openlineage,
        "publisher": str(config.python) if config.python.exists() else None,
        "pending": pending,
        "published": len(outbox.delivered()),
        "last_publish": outbox.last(),
    }
    if as_json:
        out.print_json(json.dumps(status, default=str))
        return
    for line in status_lines(status, config):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def status_lines(status: dict[str, Any], config: CatalogSettings) -> list[str]:
    """`onering catalog status` as plain lines."""
    lines = [
        f"OpenMetadata: {status['openmetadata'] or 'not configured (ONERING_OPENMETADATA_URL)'}",
        "OpenLineage: "
        + (status["openlineage"] or "not configured (ONERING_OPENLINEAGE_URL or _FILE)"),
        f"publisher: {status['publisher'] or f'{config.python} missing: run `make setup`'}",
        f"runs: {len(status['pending'])} pending, {status['published']} published",
    ]
    shown = status["pending"][:SHOWN]
    lines += [f"  pending {run_id}" for run_id in shown]
    if len(status["pending"]) > len(shown):
        lines.append(f"  … and {len(status['pending']) - len(shown)} more (--json lists all)")
    last = status["last_publish"]
    if last is None:
        lines.append("last publish: never")
    else:
        verdict = "ok" if last.get("ok") else "FAILED"
        lines.append(f"last publish: {last.get('at')} {verdict}: {last.get('message')}")
    return lines
