"""``python -m onering_catalog publish|pipeline-status`` (run in the openmetadata env).

The last line of stdout is the JSON summary. Exit 0: published; 2: not retryable (bad
document, token rejected, another 4xx); 3: retryable (unreachable, timeout, 5xx, 408/429
after bounded retries) — the caller keeps the run pending and the next publish catches up.

Environment: ``ONERING_OPENMETADATA_URL`` (the API root, e.g. ``http://host:8585/api``),
``ONERING_OPENMETADATA_JWT`` (never logged or written), ``ONERING_OPENMETADATA_TIMEOUT``
(seconds per request, 10), ``ONERING_OPENMETADATA_RETRIES`` (3),
``ONERING_OPENMETADATA_BACKOFF`` (first wait in seconds, 0.5; doubles each retry) and
``ONERING_OPENMETADATA_WORKERS`` (parallel reads, 8; 1 gives a fixed request order).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

OK, NOT_RETRYABLE, RETRYABLE = 0, 2, 3
DEFAULT_DRY_RUN = "openmetadata-dry-run.json"


class _Scrub(logging.Filter):
    """Replace the token in every log record (no message should carry it; this makes sure)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            record.msg = record.getMessage().replace(self.secret, "***")
            record.args = ()
        return True


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m onering_catalog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="publish a lineage document")
    pub.add_argument("--document", required=True, type=Path, help="the lineage document JSON")
    pub.add_argument("--dry-run", type=Path, help="write the requests here and send nothing")
    status = sub.add_parser("pipeline-status", help="one pipeline status (Airflow teardown)")
    status.add_argument("--pipeline", required=True, help="pipeline FQN")
    status.add_argument("--execution-id", required=True)
    status.add_argument(
        "--status", required=True, choices=["Successful", "Failed", "Pending", "Skipped"]
    )
    status.add_argument("--start-ms", required=True, type=int)
    status.add_argument("--end-ms", required=True, type=int)
    status.add_argument("--task", action="append", default=[], help="NAME=STATUS, repeatable")
    status.add_argument("--dry-run", type=Path, help="write the requests here and send nothing")
    return parser


def _finish(api: Any, summary: Any, dry_run: Path | None, code: int) -> int:
    if dry_run is not None:
        dry_run.write_text(
            json.dumps(
                {
                    "version": 1,
                    "note": "requests of a publish against an empty OpenMetadata server; ids "
                    "in bodies are placeholders the dry run's empty server answered",
                    "requests": api.counters.log,
                },
                indent=1,
                ensure_ascii=False,
            )
            + "\n"
        )
    out = summary.as_json(
        requests=api.counters.requests,
        writes=api.counters.writes,
        dry_run=str(dry_run) if dry_run is not None else None,
    )
    _say(api.scrub(json.dumps(out, ensure_ascii=False)))
    return code


def _say(line: str) -> None:
    """The summary line, on stdout (the CLI's output, not a log)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int, dry_run: Path | None = None) -> int:
    out = {
        "ok": False,
        "requests": 0,
        "writes": 0,
        "created": 0,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "errors": [message],
        "warnings": [],
        "dry_run": str(dry_run) if dry_run else None,
    }
    _say(json.dumps(out, ensure_ascii=False))
    return code


def _task_statuses(items: list[str]) -> list[dict[str, Any]]:
    """``--task NAME=STATUS`` as task statuses without times.

    The teardown knows no per-task times: ``runs.put_status`` keeps the server's.
    """
    tasks = []
    for item in items:
        name, _, status = item.partition("=")
        if status not in ("Successful", "Failed", "Pending", "Skipped"):
            raise ValueError(f"--task {item!r}: expected NAME=Successful|Failed|Pending|Skipped")
        tasks.append({"name": name, "executionStatus": status})
    return tasks


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    token = os.environ.get("ONERING_OPENMETADATA_JWT", "")
    logging.basicConfig(level=logging.WARNING, format="onering_catalog: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Scrub(token))
    url = os.environ.get("ONERING_OPENMETADATA_URL", "").strip() or None
    dry_run: Path | None = args.dry_run
    if url is None and dry_run is None:
        dry_run = Path(DEFAULT_DRY_RUN)
    if dry_run is None and not token:
        return _fail("ONERING_OPENMETADATA_JWT is not set: no token to send", NOT_RETRYABLE)

    document = None
    if args.command == "publish":
        try:
            document = json.loads(args.document.read_text())
        except (OSError, ValueError) as err:
            return _fail(f"cannot read the lineage document {args.document}: {err}", 2, dry_run)

    warnings.filterwarnings("ignore", category=UserWarning)
    from onering_catalog.api import Api
    from onering_catalog.publish import DocumentError, check_document, publish
    from onering_catalog.summary import Summary
    from onering_catalog.sync import Publisher

    logging.getLogger("metadata").setLevel(logging.CRITICAL)  # OneRing reports errors itself
    try:
        api = Api(
            None if dry_run is not None else url,
            None if dry_run is not None else token,
            timeout=_env_number("ONERING_OPENMETADATA_TIMEOUT", 10.0),
            retries=int(_env_number("ONERING_OPENMETADATA_RETRIES", 3)),
            backoff=_env_number("ONERING_OPENMETADATA_BACKOFF", 0.5),
            workers=int(_env_number("ONERING_OPENMETADATA_WORKERS", 8)),
        )
    except Exception as err:
        message = str(err).replace(token, "***") if token else str(err)
        return _fail(f"cannot set up the OpenMetadata client: {message}", NOT_RETRYABLE, dry_run)
    workers = 1 if dry_run is not None else int(_env_number("ONERING_OPENMETADATA_WORKERS", 8))

    started = time.perf_counter()
    if args.command == "publish":
        try:
            checked = check_document(document)
        except DocumentError as err:
            return _fail(str(err), NOT_RETRYABLE, dry_run)
        summary, retryable = publish(api, checked, workers=workers)
    else:
        summary, retryable = _one_status(api, args, Summary(), Publisher)
    summary.seconds = time.perf_counter() - started
    code = OK if not summary.errors else (RETRYABLE if retryable else NOT_RETRYABLE)
    return _finish(api, summary, dry_run, code)


def _one_status(api: Any, args: argparse.Namespace, summary: Any, publisher_class: Any):
    from onering_catalog.api import CatalogError
    from onering_catalog.runs import put_status

    publisher = publisher_class(api, {"services": [], "entities": [], "pipelines": []}, summary, 1)
    try:
        tasks = _task_statuses(args.task)
    except ValueError as err:
        summary.errors.append(str(err))
        return summary, False
    try:
        put_status(
            publisher,
            args.pipeline,
            args.execution_id,
            tasks,
            (args.start_ms, args.end_ms),
            final=args.status,
        )
    except CatalogError as err:
        summary.errors.append(api.scrub(str(err)))
        summary.not_written = [f"pipelineStatus {args.pipeline} {args.execution_id}"]
        return summary, err.retryable
    return summary, False


def run() -> None:
    """Entry point for ``python -m onering_catalog``."""
    sys.exit(main())
