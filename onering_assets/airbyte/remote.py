"""The Airbyte assets' step when ``ONERING_AIRBYTE_URL`` names a running instance.

The instance's destination lands the data; the step makes the instance's connection match the
YAML, syncs it and reports each selected stream's records from the job; ``records_landed``
passes when every record the source emitted was committed, and at least one. Any failure (a
failed or cancelled job, refused credentials, an unreachable instance, a connector it does
not have) fails the step in one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from onering_assets.airbyte.client import AirbyteInstanceError, client_for
from onering_assets.airbyte.connections import Connection
from onering_assets.airbyte.instance import Instance, Lake, workspace_of
from onering_assets.checks.outcome import Outcome, failures_message
from onering_assets.checks.specs import blocking_failures, emit
from onering_assets.settings import redact_url

if TYPE_CHECKING:
    from onering_assets.airbyte.assets import AirbyteResource


def outcome(check: str, stats: Mapping[str, Any] | None) -> Outcome:
    """``records_landed`` from a stream's stats in the job."""
    if stats is None:
        return Outcome.failed(check, "the job reported nothing for this stream", [], {})
    emitted, committed = stats.get("recordsEmitted"), stats.get("recordsCommitted")
    meta = {"records_emitted": emitted or 0, "records_committed": committed or 0}
    if committed != emitted:
        return Outcome.failed(
            check, f"{committed} records committed of {emitted} emitted", [], meta
        )
    if not committed:
        return Outcome.failed(check, "the connector delivered no record", [], meta)
    return Outcome(check, True, f"{committed} records emitted and committed", metadata=meta)


def _instance(airbyte: AirbyteResource) -> Instance:
    options = {
        "client_id": airbyte.client_id,
        "client_secret": airbyte.client_secret,
        "poll_interval_s": airbyte.poll_interval_s,
        "poll_timeout_s": airbyte.poll_timeout_s,
    }
    probe = client_for(airbyte.url, workspace_id=airbyte.workspace_id, **options)
    workspace = workspace_of(probe, airbyte.workspace_id)
    return Instance(client_for(airbyte.url, workspace_id=workspace, **options), workspace)


def _lake(airbyte: AirbyteResource) -> Lake:
    return Lake(
        url=airbyte.lake_url,
        endpoint=airbyte.s3_endpoint,
        region=airbyte.s3_region,
        access_key_id=airbyte.aws_access_key_id,
        secret_access_key=airbyte.aws_secret_access_key,
    )


def _stats(streams: Mapping[str, Mapping[str, Any]], connection: Connection, stream: str):
    return streams.get(stream, streams.get(f"{connection.name}_{stream}"))


def run_on_instance(
    context: dg.AssetExecutionContext,
    airbyte: AirbyteResource,
    connection: Connection,
    selected: list[str],
    source_dir: Path,
) -> Iterator[Any]:
    """Sync ``connection`` on the instance; an outcome and a materialization per stream."""
    from onering_assets.airbyte.assets import DECLS, key

    where = f"Airbyte connection {connection.name} on {redact_url(airbyte.url)}"
    try:
        instance = _instance(airbyte)
        config = connection.resolved(Path(airbyte.source_dir) if airbyte.source_dir else source_dir)
        connection_id = instance.apply(connection, config["config"], _lake(airbyte).configuration())
        for change in instance.changes:
            context.log.info(f"{where}: {change}")
    except AirbyteInstanceError as err:
        raise dg.Failure(description=f"{where} failed: {err}", allow_retries=False) from None
    try:
        job_id = instance.sync(connection_id)
        streams = instance.stream_stats(job_id)
    except AirbyteInstanceError as err:
        for stream in selected:  # the check fails with the job's reason, then the step
            failed = Outcome.failed(DECLS[0].name, str(err), [], {})
            yield from emit(context, key(connection, stream), DECLS, [failed])
        raise dg.Failure(description=f"{where} failed: {err}", allow_retries=False) from None
    outcomes = {s: outcome(DECLS[0].name, _stats(streams, connection, s)) for s in selected}
    for stream, result in outcomes.items():
        yield from emit(context, key(connection, stream), DECLS, [result])
    failures = [f for o in outcomes.values() for f in blocking_failures(DECLS, [o])]
    if failures:
        message = " ".join(failures_message(failures).split())
        raise dg.Failure(description=f"{where}, job {job_id}: {message}", allow_retries=False)
    lake = airbyte.lake_url.rstrip("/")
    for stream, result in outcomes.items():
        yield dg.MaterializeResult(
            asset_key=key(connection, stream),
            metadata={
                "airbyte_records": result.metadata["records_committed"],
                "airbyte_job_id": job_id,
                "airbyte_connection_id": connection_id,
                "airbyte_instance": redact_url(airbyte.url),
                "airbyte_changes": ", ".join(instance.changes) or "none",
                "path": f"{lake}/{connection.name}_{stream}/",
            },
        )


def check_on_instance(
    context: dg.AssetExecutionContext,
    airbyte: AirbyteResource,
    connection: Connection,
    streams: list[str],
) -> Iterator[Any]:
    """Checks alone: each stream's outcome in the connection's latest job."""
    from onering_assets.airbyte.assets import DECLS, key

    try:
        instance = _instance(airbyte)
        found = instance.named("connection", f"onering-{connection.name}")
        job_id = instance.latest_job(str(found["connectionId"])) if found else None
        jobs = instance.stream_stats(job_id) if job_id is not None else {}
    except AirbyteInstanceError as err:
        raise dg.Failure(
            description=f"Airbyte connection {connection.name} failed: {err}", allow_retries=False
        ) from None
    for stream in streams:
        result = outcome(DECLS[0].name, _stats(jobs, connection, stream))
        yield from emit(context, key(connection, stream), DECLS, [result])
