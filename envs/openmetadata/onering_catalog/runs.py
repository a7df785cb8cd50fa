"""Runs: one pipeline status per execution, and each check result of a table, sent once.

A pipeline status is keyed by ``executionId`` (the Airflow run id when Airflow triggered
the run, else the Dagster run id). Before writing, the statuses of the pipeline around the
run's time are read: when one with the same ``executionId`` exists, its timestamp is kept
and its task statuses are merged with this run's (several Dagster runs of one Airflow run
become one status); when it already holds every task as this run reports it, nothing is
sent. A check result is sent unless the test case already has a result at its timestamp.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from onering_catalog.build import make, quote_name
from onering_catalog.sync import Publisher

DAY_MS = 86_400_000
EXECUTION = {  # Dagster run and step statuses -> OpenMetadata's StatusType
    "SUCCESS": "Successful",
    "FAILURE": "Failed",
    "CANCELED": "Failed",
    "SKIPPED": "Skipped",
}
RANK = {"Failed": 3, "Pending": 2, "Successful": 1, "Skipped": 0}


def ms(iso: str | None) -> int | None:
    """Milliseconds since the epoch of an ISO time (``None`` stays ``None``)."""
    return epoch_ms(iso) if iso else None


def epoch_ms(iso: str) -> int:
    """Milliseconds since the epoch of an ISO time."""
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def status_of(dagster: str | None) -> str:
    """OpenMetadata's status for a Dagster status (anything unfinished is ``Pending``)."""
    return EXECUTION.get(str(dagster), "Pending")


def overall(tasks: list[dict[str, Any]]) -> str:
    """The execution status of a set of task statuses: the worst one wins."""
    statuses = [t["executionStatus"] for t in tasks] or ["Pending"]
    if all(s == "Skipped" for s in statuses):
        return "Skipped"
    return max(statuses, key=lambda s: RANK[s])


def _status_path(fqn: str) -> str:
    return f"/pipelines/{quote(fqn, safe='')}/status"


def existing_status(publisher: Publisher, fqn: str, execution: str, around: tuple[int, int]):
    """The server's status of ``execution`` within a day of ``around``, or ``None``."""
    query = urlencode({"startTs": around[0] - DAY_MS, "endTs": around[1] + DAY_MS})
    answer = publisher.api.get(f"{_status_path(fqn)}?{query}") or {}
    for status in answer.get("data") or []:
        if status.get("executionId") == execution:
            return status
    return None


def put_status(
    publisher: Publisher,
    fqn: str,
    execution: str,
    tasks: list[dict[str, Any]],
    times: tuple[int, int],
    final: str | None = None,
    partitions: str | None = None,
) -> None:
    """Merge ``tasks`` into the execution's status on the server, writing only a change.

    Args:
        publisher: the publish in progress.
        fqn: the pipeline.
        execution: the execution id.
        tasks: task statuses (``name``, ``executionStatus``, ``startTime``, ``endTime``); a
            task without ``startTime``/``endTime`` keys (its times are not known) keeps the
            times the server holds for it in this execution, else takes ``times``.
        times: (start, end) of the execution in ms.
        final: an execution status that overrides the one derived from the tasks (the
            Airflow DAG run's own outcome).
        partitions: the partitions the runs materialized (``"2013-04"``), kept in the
            status's ``parameters`` as ``{"partitions": ...}`` merged with the server's.
    """
    label = f"pipelineStatus {fqn} {execution}"
    current = existing_status(publisher, fqn, execution, times)
    merged = {t["name"]: t for t in (current or {}).get("taskStatus") or []}
    before = {k: dict(v) for k, v in merged.items()}
    tasks = [_with_times(t, before.get(t["name"]), times) for t in tasks]
    merged.update({t["name"]: t for t in tasks})
    task_list = [merged[k] for k in sorted(merged)]
    status = final or overall(task_list)
    keep = ("name", "executionStatus", "startTime", "endTime")
    parameters = dict((current or {}).get("parameters") or {})
    if partitions:
        parameters["partitions"] = merge_labels(parameters.get("partitions"), partitions)
    if current is not None and current.get("executionStatus") == status:
        same = all({k: before.get(t["name"], {}).get(k) for k in keep} == t for t in tasks)
        if same and parameters == (current.get("parameters") or {}):
            publisher.summary.done("unchanged", label)
            return
    from metadata.generated.schema.entity.data.pipeline import PipelineStatus

    timestamp = int(current["timestamp"]) if current else times[0]
    body = make(
        PipelineStatus,
        timestamp=timestamp,
        executionStatus=status,
        taskStatus=[{k: t[k] for k in keep if t.get(k) is not None} for t in task_list],
        executionId=execution,
        endTime=max(times[1], int((current or {}).get("endTime") or 0)),
        parameters=parameters or None,
    )
    publisher.api.write("PUT", _status_path(fqn), body)
    publisher.summary.done("updated" if current else "created", label)


def _with_times(
    task: dict[str, Any], on_server: dict[str, Any] | None, times: tuple[int, int]
) -> dict[str, Any]:
    """``task`` with its start and end: its own, else the server's for it, else the run's.

    The Airflow teardown (``pipeline-status``) knows each task's outcome but not its times,
    while the runner's publish already sent the real per-task times for the same execution
    id: replacing them with the whole run's start and end would show every task as running
    from the first task's start to the last one's end. So a task without times keeps the
    ones the server has for it, and only a task the server does not have takes the run's.
    """
    if "startTime" in task and "endTime" in task:
        return task
    known = on_server or {}
    start = known.get("startTime") if known.get("startTime") is not None else times[0]
    end = known.get("endTime") if known.get("endTime") is not None else times[1]
    return {**task, "startTime": start, "endTime": end}


def _tasks(run: dict[str, Any], known: set[str]) -> list[dict[str, Any]]:
    return [
        {
            "name": t["name"],
            "executionStatus": status_of(t.get("status")),
            "startTime": ms(t.get("start")),
            "endTime": ms(t.get("end")),
        }
        for t in run.get("tasks") or []
        if t["name"] in known
    ]


def partition_label(partitions: list[str] | None) -> str | None:
    """A run's partitions (``[first, last]`` or ``[one]``) as ``2013-04``, ``2013-01..2013-03``."""
    parts = [str(p) for p in partitions or [] if p]
    if not parts:
        return None
    return parts[0] if parts[0] == parts[-1] else f"{parts[0]}..{parts[-1]}"


def merge_labels(*labels: str | None) -> str:
    """Partition labels joined without repeats, sorted (``"2013-01, 2013-02"``)."""
    seen = {p.strip() for label in labels if label for p in str(label).split(",") if p.strip()}
    return ", ".join(sorted(seen))


def publish_statuses(publisher: Publisher) -> None:
    """One pipeline status per (pipeline, execution id) of the document's runs.

    A run whose pipeline is not in the document (a DAG no longer exported) or is not
    OneRing's in OpenMetadata is left out with a warning naming it: the run itself is done.
    """
    pipelines = {p["fqn"]: {t["name"] for t in p["tasks"]} for p in publisher.doc["pipelines"]}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in publisher.doc.get("runs") or []:
        groups[(run["pipeline"], run["execution_id"])].append(run)
    for (fqn, execution), runs in sorted(groups.items()):
        if fqn not in pipelines or fqn not in publisher.refs:
            why = "is not in the document" if fqn not in pipelines else "is not OneRing's"
            ids = ", ".join(sorted(str(r.get("run_id")) for r in runs))
            publisher.summary.warn(
                f"run {ids} (execution {execution}): status not published, pipeline {fqn} {why}"
            )
            continue
        tasks = [
            t
            for run in sorted(runs, key=lambda r: r.get("start") or "")
            for t in _tasks(run, pipelines[fqn])
        ]
        unknown = {t["name"] for r in runs for t in r.get("tasks") or []} - pipelines[fqn]
        if unknown:
            publisher.summary.warn(f"run {execution}: tasks {sorted(unknown)} are not in {fqn}")
        starts = [epoch_ms(r["start"]) for r in runs if r.get("start")]
        ends = [epoch_ms(r.get("end") or r["start"]) for r in runs if r.get("start")]
        if not starts:
            continue
        label = merge_labels(*(partition_label(r.get("partitions")) for r in runs)) or None
        put_status(publisher, fqn, execution, tasks, (min(starts), max(ends)), partitions=label)


def _result_partitions(run: dict[str, Any], result: dict[str, Any]) -> str | None:
    """The partition a check result is about: its own, else what the run materialized."""
    if result.get("partition"):
        return str(result["partition"])
    made = [
        p
        for m in run.get("materializations") or []
        if m.get("asset") == result.get("asset")
        for p in m.get("partitions") or []
    ]
    return merge_labels(*made) or None


def _checks_by_result(publisher: Publisher) -> dict[tuple[str, str], dict[str, Any]]:
    """``(asset key, check name) -> table entity`` of the checks that are test cases."""
    return {
        (e["key"], c["name"]): e
        for e in publisher.doc["entities"]
        if e["entity"] == "table" and e["fqn"] in publisher.refs
        for c in e.get("checks") or []
    }


def publish_results(publisher: Publisher) -> None:
    """Each table check result of the document's runs, unless already on the server.

    A result whose check is no longer a test case (renamed or removed since the run, or its
    table is not OneRing's in OpenMetadata) is left out with a warning naming it. Results
    of checks of containers, Feast views and models are not test cases
    (``checks.untested_note`` says so once).
    """
    checks = _checks_by_result(publisher)
    untested = {e["key"] for e in publisher.doc["entities"] if e["entity"] != "table"}
    results: dict[str, list[tuple[dict[str, Any], str | None]]] = defaultdict(list)
    for run in publisher.doc.get("runs") or []:
        for result in run.get("checks") or []:
            entity = checks.get((result["asset"], result["name"]))
            if entity is None:
                if result["asset"] not in untested:
                    publisher.summary.warn(
                        f"run {run.get('run_id')}: result of check {result['asset']} "
                        f"{result['name']} not published: no such test case in OpenMetadata"
                    )
                continue
            if result.get("at"):
                fqn = f"{entity['fqn']}.{quote_name(result['name'])}"
                results[fqn].append((result, _result_partitions(run, result)))
    names = sorted(results)

    def have(fqn: str) -> set[int]:
        stamps = [epoch_ms(r["at"]) for r, _ in results[fqn]]
        query = urlencode({"startTs": min(stamps), "endTs": max(stamps)})
        path = f"/dataQuality/testCases/testCaseResults/{quote(fqn, safe='')}?{query}"
        answer = publisher.api.get(path) or {}
        return {int(r["timestamp"]) for r in answer.get("data") or [] if r.get("timestamp")}

    for fqn, present in zip(names, publisher.parallel(have, names), strict=True):
        for result, partitions in sorted(results[fqn], key=lambda r: r[0]["at"]):
            stamp, label = epoch_ms(result["at"]), f"testCaseResult {fqn} {result['at']}"
            if stamp in present:
                publisher.summary.done("unchanged", label)
                continue
            body = _result_request(result, stamp, partitions)
            path = f"/dataQuality/testCases/testCaseResults/{quote(fqn, safe='')}"
            answer = publisher.api.write("POST", path, body, exists_ok=True)
            present.add(stamp)
            publisher.summary.done("unchanged" if answer.get("conflict") else "created", label)


def _result_request(result: dict[str, Any], stamp: int, partitions: str | None) -> Any:
    """One check result of the document as a ``TestCaseResult``, naming its partition(s).

    ``result`` reads ``"2013-04: 0 of 27004 rows rejected"``: the test case's history then
    says which month each result is about.
    """
    from metadata.generated.schema.tests.basic import (
        TestCaseResult,
        TestCaseStatus,
        TestResultValue,
    )

    text = result.get("summary") or ""
    if partitions:
        text = f"{partitions}: {text}" if text else partitions
    values = [
        make(TestResultValue, name="failing", value=str(result.get("failing") or 0)),
        make(TestResultValue, name="severity", value=str(result.get("severity") or "")),
    ]
    if partitions:
        values.append(make(TestResultValue, name="partitions", value=partitions))
    return make(
        TestCaseResult,
        timestamp=stamp,
        testCaseStatus=TestCaseStatus.Success if result["passed"] else TestCaseStatus.Failed,
        result=text or None,
        testResultValue=values,
    )
