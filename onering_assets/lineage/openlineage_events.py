"""OpenLineage run events for one run record of the lineage document.

Layout (why: OpenLineage consumers draw one edge per input x output of an event, so one job
per asset gives exactly the document's edges, where a single job for a run of several assets
would join every input to every output):

- the run: job ``<namespace>/<pipeline>`` (``onering`` for a Dagster run, ``<dag>.<task>``
  when Airflow triggered it), run id = the Dagster run id; START, then COMPLETE, FAIL or
  ABORT (canceled) from the run's status. Its parent is the Airflow DAG run, if any.
- each asset the run stepped or materialized: job ``<namespace>/onering.<layer>__<table>``
  (the same job whoever triggered it), run id uuid5(run id, asset); inputs = its upstream
  entities, output = the asset with schema, documentation, ownership, tags, column lineage
  and, on completion, its row count; job facets SQL, documentation, ownership, job type.
  Parent: the run (root: the Airflow DAG run, or the run itself).
- each asset with check results: job ``<asset job>.checks`` reading the asset, whose input
  carries ``dataQualityAssertions`` (the spec defines that facet on inputs: a check reads
  the dataset it checks). FAIL when an ERROR-severity check failed, else COMPLETE.

Event times are the record's (step start/end, check times, run start/end).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import (
    documentation_job,
    error_message_run,
    job_type_job,
    nominal_time_run,
    ownership_job,
    parent_run,
    processing_engine_run,
    sql_job,
)
from openlineage.client.generated.base import BaseFacet, JobFacet, RunFacet

from onering_assets.lineage.document import CODE_LOCATION, task_name
from onering_assets.lineage.openlineage_datasets import (
    assertions,
    column_lineage,
    input_dataset,
    output_dataset,
)

PRODUCER = "urn:onering:openlineage"
JOB_NAMESPACE = "onering"
# Stable run ids of the jobs OneRing derives (asset runs, check runs, Airflow DAG runs).
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:onering:openlineage")
RUN_STATES = {"SUCCESS": RunState.COMPLETE, "FAILURE": RunState.FAIL, "CANCELED": RunState.ABORT}
STEP_STATES = {"SUCCESS": RunState.COMPLETE, "FAILURE": RunState.FAIL, "SKIPPED": RunState.ABORT}


def derived_run_id(*parts: str) -> str:
    """A stable UUID for a job run OneRing derives from a Dagster or Airflow run."""
    return str(uuid.uuid5(UUID_NAMESPACE, "/".join(parts)))


class _Builder:
    """Events of one run record; see the module docstring for the layout."""

    def __init__(self, document: Mapping[str, Any], record: Mapping[str, Any], namespace: str):
        self.document, self.record, self.namespace = document, record, namespace
        self.entities = {e["key"]: e for e in document["entities"]}
        self.events: list[RunEvent] = []
        airflow = record.get("airflow")
        pipelines = {p["fqn"]: p for p in document["pipelines"]}
        pipeline = pipelines.get(record["pipeline"], {"name": CODE_LOCATION, "description": ""})
        self.run_job = f"{airflow['dag_id']}.{airflow['task_id']}" if airflow else pipeline["name"]
        self.run_doc = pipeline.get("description") or ""
        self.root: parent_run.Root | None = None
        if airflow:
            dag_run = derived_run_id("airflow", airflow["dag_id"], airflow["run_id"])
            self.root = parent_run.Root(
                run=parent_run.RootRun(runId=dag_run),
                job=parent_run.RootJob(namespace=namespace, name=airflow["dag_id"]),
            )

    def emit(
        self,
        state: RunState,
        when: str,
        job: Job,
        run: Run,
        inputs: list[InputDataset] | None = None,
        outputs: list[OutputDataset] | None = None,
    ) -> None:
        self.events.append(
            RunEvent(
                eventType=state,
                eventTime=when,
                run=run,
                job=job,
                inputs=inputs or [],
                outputs=outputs or [],
                producer=PRODUCER,
            )
        )

    def parent(self, run_id: str, job: str) -> parent_run.ParentRunFacet:
        root = self.root or parent_run.Root(
            run=parent_run.RootRun(runId=self.record["run_id"]),
            job=parent_run.RootJob(namespace=self.namespace, name=self.run_job),
        )
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id),
            job=parent_run.Job(namespace=self.namespace, name=job),
            root=root,
        )

    def job_type(self, kind: str) -> job_type_job.JobTypeJobFacet:
        return job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="DAGSTER", jobType=kind
        )

    def run_facets(
        self,
        state: RunState | None,
        message: str,
        parent: parent_run.ParentRunFacet | None = None,
    ) -> dict[str, RunFacet]:
        """Engine, partition window, parent (default: the Airflow DAG run) and error."""
        facets: dict[str, RunFacet] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=version("dagster"),
                name="Dagster",
                openlineageAdapterVersion=version("openlineage-python"),
            )
        }
        nominal = _nominal_time(self.record.get("partitions") or [])
        if nominal is not None:
            facets["nominalTime"] = nominal
        if parent is not None:
            facets["parent"] = parent
        elif self.root is not None:
            facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.root.run.runId),
                job=parent_run.Job(namespace=self.namespace, name=self.root.job.name),
                root=self.root,
            )
        if state == RunState.FAIL and message:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=message, programmingLanguage="python"
            )
        return facets

    def build(self) -> list[RunEvent]:
        record = self.record
        if not record.get("start"):
            return []
        final = RUN_STATES.get(record["status"]) if record.get("end") else None
        job = Job(
            namespace=self.namespace,
            name=self.run_job,
            facets=self.job_facets(self.run_doc, [], None, "JOB"),
        )
        start_run = Run(runId=record["run_id"], facets=self.run_facets(None, ""))
        self.emit(RunState.START, record["start"], job, start_run)
        steps = {s["name"]: s for s in record.get("steps", [])}
        keys = {k for k in self.entities if task_name(k) in steps}
        keys |= {m["asset"] for m in record.get("materializations", [])}
        keys |= {c["asset"] for c in record.get("checks", [])}
        keys &= set(self.entities)
        order = sorted(keys, key=lambda k: ((steps.get(task_name(k)) or {}).get("start") or "", k))
        for key in order:
            self.asset(key, steps.get(task_name(key)), final)
            self.checks(key)
        if final is not None:
            failed = [c for c in record.get("checks", []) if not c["passed"]]
            message = "; ".join(f"{c['asset']} {c['name']}: {c['summary']}" for c in failed)
            run = Run(runId=record["run_id"], facets=self.run_facets(final, message))
            self.emit(final, record["end"], job, run)
        return self.events

    def job_facets(
        self, description: str, owners: list[str], sql: str | None, kind: str
    ) -> dict[str, JobFacet]:
        facets: dict[str, JobFacet] = {"jobType": self.job_type(kind)}
        if description:
            facets["documentation"] = documentation_job.DocumentationJobFacet(
                description=description
            )
        if owners:
            facets["ownership"] = ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=o, type="MAINTAINER") for o in owners]
            )
        if sql:
            facets["sql"] = sql_job.SQLJobFacet(query=sql, dialect="clickhouse")
        return facets

    def asset(self, key: str, step: Mapping[str, Any] | None, final: RunState | None) -> None:
        entity, record = self.entities[key], self.record
        edges = [e for e in self.document["edges"] if e["to"] == key and not e.get("writes")]
        # A table this asset writes rows into (the stream into Bronze) is one of its outputs.
        written = [
            output_dataset(self.entities[e["to"]], None, None)
            for e in self.document["edges"]
            if e["from"] == key and e.get("writes")
        ]
        sql = next((e["sql"] for e in edges if e["sql"]), None)
        name = f"{CODE_LOCATION}.{task_name(key)}"
        doc = f"Materializes {key}. {entity['description']}".strip()
        job = Job(
            namespace=self.namespace,
            name=name,
            facets=self.job_facets(doc, entity["owners"], sql, "ASSET"),
        )
        run_id = derived_run_id(record["run_id"], key)
        inputs = [input_dataset(self.entities[e["from"]]) for e in edges]
        lineage = column_lineage(edges, self.entities)
        materialized = next(
            (m for m in record.get("materializations", []) if m["asset"] == key), None
        )
        start = (step or {}).get("start") or record["start"]
        state = STEP_STATES.get((step or {}).get("status", ""))
        if state is None and final is not None:
            state = RunState.COMPLETE if materialized else final
        parent = self.parent(record["run_id"], self.run_job)
        start_run = Run(runId=run_id, facets=self.run_facets(None, "", parent))
        self.emit(
            RunState.START,
            start,
            job,
            start_run,
            inputs,
            [output_dataset(entity, lineage, None), *written],
        )
        if state is None:
            return
        rows = materialized["rows"] if materialized and state == RunState.COMPLETE else None
        failed = [c for c in record.get("checks", []) if c["asset"] == key and not c["passed"]]
        message = "; ".join(f"{c['name']}: {c['summary']}" for c in failed) or f"{key} failed"
        end_run = Run(runId=run_id, facets=self.run_facets(state, message, parent))
        end = (step or {}).get("end") or record.get("end") or start
        outputs = [output_dataset(entity, lineage, rows), *written]
        self.emit(state, end, job, end_run, inputs, outputs)

    def checks(self, key: str) -> None:
        checks = [c for c in self.record.get("checks", []) if c["asset"] == key]
        if not checks:
            return
        entity, record = self.entities[key], self.record
        asset_job = f"{CODE_LOCATION}.{task_name(key)}"
        job = Job(
            namespace=self.namespace,
            name=f"{asset_job}.checks",
            facets=self.job_facets(f"The checks of {key}.", entity["owners"], None, "CHECK"),
        )
        run_id = derived_run_id(record["run_id"], key, "checks")
        parent = self.parent(derived_run_id(record["run_id"], key), asset_job)
        times = sorted(c["at"] for c in checks if c.get("at")) or [record["start"]]
        failed = [c for c in checks if not c["passed"] and c["severity"] == "ERROR"]
        state = RunState.FAIL if failed else RunState.COMPLETE
        message = "; ".join(f"{c['name']}: {c['summary']}" for c in failed)
        self.emit(RunState.START, times[0], job, Run(runId=run_id, facets={"parent": parent}))
        dataset = input_dataset(entity, dataQualityAssertions=assertions(entity, checks))
        run = Run(runId=run_id, facets=self.run_facets(state, message, parent))
        self.emit(state, times[-1], job, run, [dataset])


def _nominal_time(partitions: list[str]) -> nominal_time_run.NominalTimeRunFacet | None:
    """The partition window of a run of monthly (``2013-01``) or daily partitions."""
    if not partitions:
        return None
    first, last = partitions[0], partitions[-1]
    try:
        if len(first) == 7 and len(last) == 7:
            start = datetime.strptime(first, "%Y-%m").replace(tzinfo=UTC)
            end = datetime.strptime(last, "%Y-%m").replace(tzinfo=UTC)
            end = end.replace(year=end.year + end.month // 12, month=end.month % 12 + 1)
        else:
            start = datetime.strptime(first, "%Y-%m-%d").replace(tzinfo=UTC)
            end = datetime.strptime(last, "%Y-%m-%d").replace(tzinfo=UTC)
            end = datetime.fromtimestamp(end.timestamp() + 86400, UTC)
    except ValueError:
        return None
    return nominal_time_run.NominalTimeRunFacet(
        nominalStartTime=start.isoformat().replace("+00:00", "Z"),
        nominalEndTime=end.isoformat().replace("+00:00", "Z"),
    )


def _facets(value: Any) -> Iterator[BaseFacet]:
    """Every facet inside an event (to stamp OneRing as their producer)."""
    if isinstance(value, BaseFacet):
        yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _facets(item)
    elif isinstance(value, list):
        for item in value:
            yield from _facets(item)
    elif attr.has(type(value)):
        for field in attr.fields(type(value)):
            yield from _facets(getattr(value, field.name))


def run_events(
    document: Mapping[str, Any], record: Mapping[str, Any], *, namespace: str = JOB_NAMESPACE
) -> list[RunEvent]:
    """The OpenLineage events of one run record (``document["runs"][i]``).

    The run's START comes first and its end last; each job's START precedes its end. A run
    still in progress gives START events only; a queued run (no start) gives none.

    Args:
        document: the lineage document (``build_document``).
        record: one of its run records.
        namespace: the job namespace.
    """
    events = _Builder(document, record, namespace).build()
    for facet in _facets(events):
        facet._producer = PRODUCER
    return events
