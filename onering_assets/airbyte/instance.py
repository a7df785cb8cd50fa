"""A declared connection on a running Airbyte: made to match the YAML, synced, its job read.

By name, through Airbyte's public API: source ``onering-<connection>`` (the YAML's connector
and config), destination ``onering-lake`` (S3 Parquet under ``ONERING_AIRBYTE_LAKE_URL``, one
folder per stream, ``<connection>_<stream>/``), connection ``onering-<connection>`` (the YAML's
streams, full refresh, manual schedule). Each is created when missing and patched when it
differs from the declaration; otherwise left alone. dagster-airbyte's client then starts the
sync (or resumes polling one left running, e.g. by a killed step) and polls it, for at most
``ONERING_AIRBYTE_POLL_TIMEOUT`` seconds; the job's attempts (Configuration API) give each
stream's records emitted and committed, or Airbyte's failure reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster_airbyte.translator import AirbyteJobStatusType

from onering_assets.airbyte.client import AirbyteInstanceError, OneRingAirbyteClient
from onering_assets.airbyte.connections import Connection
from onering_assets.settings import AIRBYTE_POLL_TIMEOUT

MASKED = "**********"  # how Airbyte returns a secret of a stored configuration
DESTINATION = "onering-lake"
RUNNING = {
    AirbyteJobStatusType.RUNNING,
    AirbyteJobStatusType.PENDING,
    AirbyteJobStatusType.INCOMPLETE,
}


@dataclass(frozen=True)
class Lake:
    """Where the instance's S3 destination writes (as the instance's workers reach it)."""

    url: str
    endpoint: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""

    def configuration(self) -> dict[str, Any]:
        if not self.url.startswith("s3://") or not self.url[5:].split("/")[0]:
            raise AirbyteInstanceError(
                f"ONERING_AIRBYTE_LAKE_URL={self.url!r}: give the instance's destination as "
                "s3://bucket/prefix (the compose lake: s3://onering-lake/airbyte)."
            )
        bucket, _, prefix = self.url[5:].partition("/")
        config: dict[str, Any] = {
            "destinationType": "s3",
            "s3_bucket_name": bucket,
            "s3_bucket_path": prefix.strip("/") or "airbyte",
            "s3_bucket_region": self.region,
            "s3_path_format": "${STREAM_NAME}/",
            "format": {"format_type": "Parquet", "compression_codec": "SNAPPY"},
        }
        optional = {
            "s3_endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }
        return config | {k: v for k, v in optional.items() if v}


@dataclass
class Synced:
    """What a sync did: the job, each stream's stats, and what was created or updated."""

    connection_id: str
    job_id: int
    streams: dict[str, Mapping[str, Any]]
    changes: list[str] = field(default_factory=list)


def matches(want: Any, have: Any) -> bool:
    """Whether the stored value holds the declared one (a masked secret matches any)."""
    if have == MASKED:
        return True
    if isinstance(want, dict):
        return isinstance(have, dict) and all(matches(v, have.get(k)) for k, v in want.items())
    return want == have


class Instance:
    """The workspace of one running Airbyte, through dagster-airbyte's client."""

    def __init__(self, client: OneRingAirbyteClient, workspace_id: str) -> None:
        self.client = client
        self.workspace_id = workspace_id
        self.changes: list[str] = []

    def definition(self, kind: str, connector: str) -> str:
        """The id of ``connector`` (e.g. ``source-faker``) among the workspace's definitions."""
        path = f"/workspaces/{self.workspace_id}/definitions/{kind}s"
        found = {d["dockerRepository"]: d["id"] for d in self.client.listed(path)}
        image = f"airbyte/{connector}"
        if image not in found:
            raise AirbyteInstanceError(
                f"Airbyte at {self.client.instance} has no {kind} connector {image} in workspace "
                f"{self.workspace_id}: add its definition to the instance, or use another."
            )
        return found[image]

    def named(self, kind: str, name: str) -> Mapping[str, Any] | None:
        items = self.client.listed(f"/{kind}s", workspaceIds=self.workspace_id)
        return next((i for i in items if i.get("name") == name), None)

    def actor(self, kind: str, name: str, connector: str, configuration: dict[str, Any]) -> str:
        """Find ``kind`` (source or destination) ``name``; create it or patch its config."""
        definition_id = self.definition(kind, connector)
        found = self.named(kind, name)
        if found is None:
            body = {
                "name": name,
                "workspaceId": self.workspace_id,
                "definitionId": definition_id,
                "configuration": configuration,
            }
            created = self.client.post(f"/{kind}s", body)
            self.changes.append(f"created {kind} {name}")
            return str(created[f"{kind}Id"])
        actor_id = str(found[f"{kind}Id"])
        if found.get("definitionId") != definition_id:
            raise AirbyteInstanceError(
                f"Airbyte {kind} {name} ({actor_id}) runs another connector than {connector}: "
                "delete it on the instance, and the next run creates it anew."
            )
        if not matches(configuration, found.get("configuration")):
            self.client.patch(f"/{kind}s/{actor_id}", {"configuration": configuration})
            self.changes.append(f"updated {kind} {name}")
        return actor_id

    def connection(self, declared: Connection, source_id: str, destination_id: str) -> str:
        """Find connection ``onering-<name>``; create it or patch what differs."""
        name = f"onering-{declared.name}"
        want: dict[str, Any] = {
            "configurations": {
                "streams": [
                    {"name": s, "syncMode": "full_refresh_overwrite"} for s in declared.streams
                ]
            },
            "prefix": f"{declared.name}_",
            "namespaceDefinition": "destination",
            "schedule": {"scheduleType": "manual"},
            "status": "active",
        }
        found = self.named("connection", name)
        if found is None:
            body = {"name": name, "sourceId": source_id, "destinationId": destination_id}
            created = self.client.post("/connections", body | want)
            self.changes.append(f"created connection {name}")
            return str(created["connectionId"])
        connection_id = str(found["connectionId"])
        if (found.get("sourceId"), found.get("destinationId")) != (source_id, destination_id):
            raise AirbyteInstanceError(
                f"Airbyte connection {name} ({connection_id}) links another source or "
                "destination: delete it on the instance, and the next run creates it anew."
            )
        have = {
            **found,
            "configurations": {
                "streams": [
                    {"name": s.get("name"), "syncMode": s.get("syncMode")}
                    for s in found.get("configurations", {}).get("streams", [])
                ]
            },
        }
        if not matches(want, have):
            self.client.patch(f"/connections/{connection_id}", want)
            self.changes.append(f"updated connection {name}")
        return connection_id

    def apply(
        self, declared: Connection, config: dict[str, Any], destination: dict[str, Any]
    ) -> str:
        """Make the instance hold the declaration; the connection's id."""
        source_type = declared.source.removeprefix("source-")
        source_id = self.actor(
            "source",
            f"onering-{declared.name}",
            declared.source,
            {**config, "sourceType": source_type},
        )
        destination_id = self.actor("destination", DESTINATION, "destination-s3", destination)
        return self.connection(declared, source_id, destination_id)

    def stream_stats(self, job_id: int) -> dict[str, Mapping[str, Any]]:
        """Each stream's stats in the job's last attempt."""
        attempts = self.client.job_info(job_id).get("attempts") or [{}]
        stats = attempts[-1].get("attempt", {}).get("streamStats") or []
        return {s["streamName"]: s.get("stats", {}) for s in stats}

    def failure(self, job_id: int) -> str:
        """Airbyte's reason for the job's failure, from its last attempt."""
        attempts = self.client.job_info(job_id).get("attempts") or [{}]
        summary = attempts[-1].get("attempt", {}).get("failureSummary") or {}
        reasons = [
            f.get("externalMessage") or f.get("internalMessage") or ""
            for f in summary.get("failures", [])
        ]
        return " ".join("; ".join(r for r in reasons if r).split()) or "no reason recorded"

    def latest_job(self, connection_id: str) -> int | None:
        jobs = self.client.get_jobs_for_connection(connection_id)
        return max((j.id for j in jobs), default=None)

    def running_jobs(self, connection_id: str) -> list[int]:
        jobs = self.client.get_jobs_for_connection(connection_id)
        return sorted(j.id for j in jobs if j.status in RUNNING)

    def sync(self, connection_id: str) -> int:
        """Poll a new sync, or the one already running, to its end; the succeeded job's id.

        dagster-airbyte starts and polls it, and cancels it when the poll ends otherwise.

        Raises:
            AirbyteInstanceError: the job failed or was cancelled, with Airbyte's reason; it
                outlasted ``ONERING_AIRBYTE_POLL_TIMEOUT`` (then it is cancelled); more than
                one sync of the connection runs.
        """
        try:
            output = self.client.sync_and_poll(connection_id)
        except dg.Failure as err:
            what = " ".join(str(err.description or err).split())
            if what.startswith("Timeout:"):
                job = re.search(r"job (\d+)", what)
                raise AirbyteInstanceError(
                    f"Airbyte job {job.group(1) if job else '?'} of connection {connection_id} "
                    f"still ran after {AIRBYTE_POLL_TIMEOUT}={self.client.poll_timeout:g} s: "
                    f"cancelled it; raise {AIRBYTE_POLL_TIMEOUT} if the sync needs longer."
                ) from None
            if "running" in what:  # several syncs of the connection run: which is ours?
                running = ", ".join(map(str, self.running_jobs(connection_id))) or "?"
                raise AirbyteInstanceError(
                    f"Airbyte connection {connection_id} has syncs running (jobs {running}): "
                    "cancel them on the instance (its UI, or DELETE /api/public/v1/jobs/<id>) "
                    "and run again."
                ) from None
            job_id = self.latest_job(connection_id)
            reason = self.failure(job_id) if job_id is not None else ""
            raise AirbyteInstanceError(
                f"{what.rstrip('.')}: {reason}" if reason else what
            ) from None
        return int(output.job_details["jobId"])


def workspace_of(client: OneRingAirbyteClient, workspace_id: str) -> str:
    """The given workspace, or the instance's first (abctl creates one)."""
    if workspace_id:
        client.get(f"/workspaces/{workspace_id}")
        return workspace_id
    workspaces = client.listed("/workspaces")
    if not workspaces:
        raise AirbyteInstanceError(f"Airbyte at {client.instance} has no workspace.")
    return str(workspaces[0]["workspaceId"])
