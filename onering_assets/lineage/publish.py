"""Deliver runs to the catalog: build the lineage document, call the publisher, keep the ledger.

The OpenMetadata publisher is called through ``publisher.py`` (its own environment, bounded
calls, retries); OpenLineage events are emitted here. The whole delivery fits a time
budget, so a catalog outage delays a run by at most ``budget_s`` and never changes its
outcome: the runs stay pending (see ``outbox.py``) and the next publish catches up.
Nothing here imports OpenMetadata.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onering_assets.errors import ConfigError
from onering_assets.lineage.outbox import (
    MISSING,
    OPENLINEAGE,
    OPENMETADATA,
    Outbox,
    PublishBusyError,
    outbox_for,
)
from onering_assets.lineage.publisher import (
    EXIT_NOT_RETRYABLE,
    EXIT_OK,
    EXIT_RETRYABLE,
    call_publisher,
    scrub,
    without_secrets,
)
from onering_assets.settings import CatalogSettings

FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


@dataclass
class PublishResult:
    """What one delivery did.

    Attributes:
        ok: every target it sent to (or the dry run) succeeded.
        message: one line, for stderr, the task log and `onering catalog status`.
        runs: the runs delivered (and now in the ledger); empty on failure or a dry run.
        pending: runs still pending afterwards.
        retryable: a failure the next publish may get past (catalog down, busy, timed out).
        code: the publisher's exit code; ``None`` when it was not run or did not finish.
        summary: the publisher's JSON summary (requests, writes, errors...).
        counts: entities, edges and runs in the document sent.
        dry_run: where the requests were written instead of sent.
    """

    ok: bool
    message: str
    runs: list[str] = field(default_factory=list)
    pending: int = 0
    retryable: bool = False
    code: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    dry_run: str | None = None
    attempts: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (what ``last_publish.json`` keeps)."""
        return asdict(self)


def emit_openlineage_events(
    document: Mapping[str, Any], deadline: float, skip: Iterable[str] = ()
) -> tuple[list[str], str | None, bool]:
    """Emit each run's OpenLineage events (``openlineage.emit_run``), oldest first.

    Runs in ``skip`` (already emitted) are left out. Stops at the first failure or when the
    budget is spent: returns the runs whose events all went out, why it stopped (``None``
    when every run went out) and whether a later attempt may get further.
    """
    from onering_assets.lineage.openlineage import OpenLineageError, emit_run

    emitted: list[str] = []
    done = set(skip)
    for run in (r for r in document["runs"] if r["run_id"] not in done):
        remaining = deadline - time.monotonic()
        if remaining < 1.0:
            return emitted, "OpenLineage: no time left in the budget", True
        # Each event's request may not outlast the budget (the emitter retries 3 times).
        timeout = min(float(os.environ.get("ONERING_OPENLINEAGE_TIMEOUT") or 10), remaining / 4)
        env = {**os.environ, "ONERING_OPENLINEAGE_TIMEOUT": f"{max(timeout, 0.5):.1f}"}
        try:
            emit_run(document, run, env=env)
        except OpenLineageError as err:
            return emitted, scrub(f"OpenLineage: {err}"), err.retryable
        emitted.append(run["run_id"])
    return emitted, None, True


def publish_pending(
    defs: Any,
    instance: Any,
    outbox: Outbox,
    config: CatalogSettings,
    *,
    dry_run: Path | None = None,
    openlineage: bool = True,
    budget_s: float | None = None,
    limit: int | None = None,
) -> PublishResult:
    """Publish the graph and the oldest pending runs, within ``budget_s`` in all.

    Args:
        defs: the definitions (the graph part of the document).
        instance: the Dagster instance holding the runs.
        outbox: the pending runs and the ledger.
        config: the catalog settings.
        dry_run: write OpenMetadata's requests here and send nothing to it; no run is
            marked published by OpenMetadata's dry run.
        openlineage: emit OpenLineage events too, when a target is configured.
        budget_s: the whole delivery's time limit (default ``config.budget_s``),
            waiting for another publisher included.
        limit: at most this many runs (default ``config.batch``; all for a dry run).
    """
    started = time.monotonic()
    deadline = started + (config.budget_s if budget_s is None else budget_s)
    try:
        with outbox.publishing(timeout_s=deadline - time.monotonic()):
            result = _publish_locked(
                defs, instance, outbox, config, dry_run, openlineage, deadline, limit
            )
            result.seconds = round(time.monotonic() - started, 3)
            outbox.write_last(
                json.loads(without_secrets(json.dumps(result.to_dict(), default=str)))
            )
    except PublishBusyError:
        result = PublishResult(
            ok=False,
            retryable=True,
            message="another publish held the catalog lock for the whole time budget",
            pending=len(outbox.pending()),
            seconds=round(time.monotonic() - started, 3),
        )
    return result


def _document(defs: Any, instance: Any, run_ids: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The lineage document with the finished runs among ``run_ids``; the ids not found."""
    from onering_assets.lineage.airflow import airflow_dags
    from onering_assets.lineage.document import build_document
    from onering_assets.lineage.runs import run_records

    records = run_records(instance, run_ids) if run_ids else []
    found = {r["run_id"] for r in records}
    finished = [r for r in records if r["status"] in FINISHED]
    document = build_document(defs, dags=airflow_dags(defs), runs=finished)
    return document, [r for r in run_ids if r not in found]


def _publish_locked(
    defs: Any,
    instance: Any,
    outbox: Outbox,
    config: CatalogSettings,
    dry_run: Path | None,
    openlineage: bool,
    deadline: float,
    limit: int | None,
) -> PublishResult:
    from onering_assets.lineage.document import dumps

    send_om = dry_run is None and config.url is not None
    send_ol = openlineage and config.openlineage is not None
    targets = [t for t, on in ((OPENMETADATA, send_om), (OPENLINEAGE, send_ol)) if on]
    pending = outbox.to_send(targets)
    batch = pending if dry_run is not None and limit is None else pending[: limit or config.batch]
    document, missing = _document(defs, instance, batch)
    runs = [r["run_id"] for r in document["runs"]]
    counts = {k: len(document[k]) for k in ("entities", "edges", "runs")}
    code, summary, attempts, failures, retryable = None, {}, 0, [], True
    if send_om or dry_run is not None:
        args = ["publish", "--document", str(outbox.folder / f"document-{os.getpid()}.json")]
        if dry_run is not None:
            dry_run.parent.mkdir(parents=True, exist_ok=True)
            args += ["--dry-run", str(dry_run.resolve())]
        try:
            Path(args[2]).write_text(dumps(document))
            code, summary, reason, attempts = call_publisher(config, args, deadline)
        except ConfigError as err:
            code, reason = EXIT_NOT_RETRYABLE, str(err)
        finally:
            Path(args[2]).unlink(missing_ok=True)
        if code != EXIT_OK:
            failures.append(_om_failure(code, reason, attempts))
            retryable = code != EXIT_NOT_RETRYABLE
    if send_om and not failures:
        outbox.mark_target(runs, OPENMETADATA)
    if send_ol:
        # Each target keeps its own progress: OpenMetadata being down (or refusing the
        # token) never holds OpenLineage back, and a retry never sends a run to it twice.
        skip = outbox.delivered_to(OPENLINEAGE)
        emitted, problem, ol_retryable = emit_openlineage_events(document, deadline, skip)
        outbox.mark_target(emitted, OPENLINEAGE)
        if problem:
            failures.append(problem)
            retryable = retryable and ol_retryable
    # A run is done when every configured target took it.
    taken = [outbox.delivered_to(t) for t in targets]
    delivered = [r for r in runs if taken and all(r in t for t in taken)]
    if delivered:
        outbox.mark(delivered)
    if (send_om or send_ol) and not failures:
        outbox.mark(missing, MISSING)
    return PublishResult(
        ok=not failures,
        message=failures[0] if failures else _done(runs, summary, dry_run, send_om, send_ol),
        runs=delivered,
        pending=len(outbox.to_send(targets)),
        retryable=bool(failures) and retryable,
        code=code,
        summary=summary,
        counts=counts,
        dry_run=str(dry_run) if dry_run is not None else None,
        attempts=attempts,
    )


def _om_failure(code: int | None, reason: str, attempts: int) -> str:
    if code is None:
        return f"OpenMetadata publish failed after {attempts} attempt(s): {reason}"
    kind = {EXIT_RETRYABLE: "retryable", EXIT_NOT_RETRYABLE: "not retryable"}.get(code, "failed")
    return f"OpenMetadata publish failed (exit {code}, {kind}): {reason or 'no reason given'}"


def _done(
    runs: list[str], summary: Mapping[str, Any], dry_run: Path | None, om: bool, ol: bool
) -> str:
    where = [t for t, on in (("OpenMetadata", om), ("OpenLineage", ol)) if on]
    sent = f"published {plural(len(runs), 'run')} to {' and '.join(where)}" if where else ""
    if dry_run is not None:
        wrote = f"dry run: OpenMetadata's requests written to {dry_run}"
        return f"{wrote}; {sent}" if sent else wrote
    return sent


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs`` (``many``: an irregular plural, e.g. ``entities``)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def after_run(
    defs: Any,
    instance: Any,
    run_id: str,
    state_dir: Path,
    *,
    publish: bool = True,
    budget_s: float | None = None,
    report: Callable[[str], None] = _stderr,
    progress: Callable[[str], None] = _stderr,
) -> PublishResult | None:
    """Record a run that ended; publish the pending runs if a catalog is configured.

    Never raises and never changes the run's outcome: a failure is ``report``ed on one
    line and the runs stay pending. With no catalog configured it only appends the id.

    Args:
        defs: the definitions the run used.
        instance: the Dagster instance holding the run.
        run_id: the run that ended.
        state_dir: the state folder (its ``catalog/`` holds the outbox).
        publish: ``False`` records only (a canceled run: it is being stopped).
        budget_s: time limit of the publish (default ``ONERING_CATALOG_BUDGET``).
        report: where the one-line warning goes (default stderr).
        progress: where "publishing run … to …" goes before a publish (default stderr).

    Returns:
        The publish's result, or ``None`` when nothing was published.
    """
    try:
        outbox = outbox_for(state_dir)
        outbox.record(run_id)
        config = CatalogSettings.from_env()
        if not (publish and config.configured):
            return None
        where = " and ".join(
            t for t, on in (("OpenMetadata", config.url), ("OpenLineage", config.openlineage)) if on
        )
        progress(f"publishing run {run_id} to {where}…")
        result = publish_pending(defs, instance, outbox, config, budget_s=budget_s)
    except Exception as err:  # the catalog never fails a data run
        result = PublishResult(ok=False, message=scrub(f"{type(err).__name__}: {err}"))
    if not result.ok:
        report(
            f"catalog: {result.message}; run {run_id} stays pending (the next publish, or "
            "`onering catalog publish`, catches up)"
        )
    return result
