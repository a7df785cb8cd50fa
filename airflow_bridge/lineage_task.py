"""``publish_lineage``: each exported DAG's teardown, carrying its run's status to the catalog.

After every other task of a DAG run has ended (failed, upstream-failed and skipped ones
too), it sends the Airflow run's status, and each task's, to the catalog's pipeline
``onering_airflow.<dag_id>`` through the openmetadata environment's publisher
(``envs/openmetadata/.venv/bin/python -m onering_catalog pipeline-status``).

It never changes the DAG run's outcome. Airflow 3.3 leaves a teardown with
``on_failure_fail_dagrun=False`` out of the run's state (``DagRun._tis_for_dagrun_state`` in
``airflow/models/dagrun.py``): the run fails exactly when one of the other tasks' leaves
failed, as without this task, and the teardown's own failure fails nothing. A teardown with
no setup tasks runs once all its upstream tasks are done, whatever their state
(``ALL_DONE_SETUP_SUCCESS`` in ``airflow/ti_deps/deps/trigger_rule_dep.py``).

A task cannot read the metadata DB in Airflow 3 (Task SDK); it asks the execution API for
the run's task instances (``RuntimeTaskInstance.get_task_breadcrumbs``: each terminal task's
state and duration, no start and end times). A catalog outage (publisher exit 3) is logged
as a warning and the task succeeds; a refusal (exit 2: bad token, unknown pipeline) fails
this task only; with no catalog configured (``ONERING_OPENMETADATA_URL`` unset) it logs the
run's status and publishes nothing. Nothing here imports more than ``airflow.sdk`` at DAG
parse time.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

TASK_ID = "publish_lineage"
PIPELINE_SERVICE = "onering_airflow"
# The interpreter of the openmetadata environment; ONERING_CATALOG_PYTHON overrides it.
PYTHON_ENV = "ONERING_CATALOG_PYTHON"
URL_ENV = "ONERING_OPENMETADATA_URL"
ENV_PYTHON = Path(__file__).resolve().parents[1] / "envs" / "openmetadata" / ".venv" / "bin"
# A catalog outage may keep the DAG run open only this long: the catalog budget a run's end
# has (ONERING_CATALOG_BUDGET, 30 s by default) plus the publisher's imports when it writes.
IMPORT_ALLOWANCE_S = 30.0


def publish_timeout_s() -> float:
    """Seconds the teardown waits for the publisher before killing it."""
    try:
        budget = float(os.environ.get("ONERING_CATALOG_BUDGET") or 30)
    except ValueError:
        budget = 30.0
    return max(budget, 1.0) + IMPORT_ALLOWANCE_S


EXIT_RETRYABLE = 3

FAILED_STATES = frozenset({"failed", "upstream_failed"})
# Airflow task state -> OpenMetadata StatusType, as OpenMetadata's own Airflow connector maps
# them (metadata/ingestion/source/pipeline/airflow/metadata.py, STATUS_MAP).
CATALOG_STATUS = {
    "success": "Successful",
    "failed": "Failed",
    "upstream_failed": "Failed",
    "skipped": "Skipped",
}


def catalog_python() -> str:
    """The openmetadata environment's interpreter (resolved at parse time, no import)."""
    return os.environ.get(PYTHON_ENV) or str(ENV_PYTHON / "python")


def run_report(
    breadcrumbs: Iterable[Mapping[str, Any]], tasks: Sequence[str], leaves: Iterable[str]
) -> dict[str, Any]:
    """The DAG run's status as Airflow decides it, from its tasks' terminal states.

    Args:
        breadcrumbs: the run's terminal task instances (``task_id``, ``map_index``, ``state``,
            ``duration``), as Airflow's execution API returns them.
        tasks: the DAG's task ids other than this one (the catalog pipeline's tasks).
        leaves: the tasks no other task (but this one) depends on: Airflow fails the run
            when one of them ended failed or upstream-failed, and only then.

    Returns:
        ``status`` (``Successful`` or ``Failed``), ``failed`` (task ids that failed
        themselves), and per task its Airflow ``state``, catalog ``status`` and ``duration_s``.
    """
    crumbs = {str(c["task_id"]): c for c in breadcrumbs if c.get("map_index", -1) in (-1, None)}
    report: dict[str, dict[str, Any]] = {}
    for task_id in tasks:
        crumb = crumbs.get(task_id, {})
        state = str(crumb.get("state") or "none")
        report[task_id] = {
            "state": state,
            "status": CATALOG_STATUS.get(state, "Pending"),
            "duration_s": crumb.get("duration"),
        }
    failed_leaf = any(report[t]["state"] in FAILED_STATES for t in leaves if t in report)
    return {
        "status": "Failed" if failed_leaf else "Successful",
        "failed": sorted(t for t, r in report.items() if r["state"] == "failed"),
        "tasks": report,
    }


def _ms(moment: datetime | None) -> int:
    return int((moment.timestamp() if moment else time.time()) * 1000)


def status_command(
    python: str, dag_id: str, run_id: str, report: Mapping[str, Any], start_ms: int, end_ms: int
) -> list[str]:
    """The publisher's ``pipeline-status`` command line for one DAG run (no secret in it)."""
    argv = [python, "-m", "onering_catalog", "pipeline-status"]
    argv += ["--pipeline", f"{PIPELINE_SERVICE}.{dag_id}", "--execution-id", run_id]
    argv += ["--status", report["status"], "--start-ms", str(start_ms), "--end-ms", str(end_ms)]
    for task_id, task in report["tasks"].items():
        argv += ["--task", f"{task_id}={task['status']}"]
    return argv


def describe(dag_id: str, run_id: str, report: Mapping[str, Any]) -> str:
    """One log line: the run's status and each task's state and duration."""
    tasks = ", ".join(
        f"{t} {r['state']}" + (f" {r['duration_s']:.1f}s" if r["duration_s"] is not None else "")
        for t, r in report["tasks"].items()
    )
    failed = f" (failed: {', '.join(report['failed'])})" if report["failed"] else ""
    return f"DAG run {dag_id}/{run_id}: {report['status']}{failed}; tasks: {tasks}"


def summary_of(output: str) -> dict[str, Any]:
    """The publisher's JSON summary (its last stdout line), or {} when it printed none."""
    for line in reversed(output.strip().splitlines()):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        return parsed if isinstance(parsed, dict) else {}
    return {}


class PublishLineageOperator(BaseOperator):
    """The DAG's teardown: publish the run's status to ``onering_airflow.<dag_id>``.

    Wired downstream of every task of the DAG; ``retries`` 0 (the publisher retries with
    backoff itself). See the module docstring for what it may and may not change.
    """

    template_fields: Collection[str] = ()
    ui_color = "#eef3fb"

    def __init__(
        self, *, dag_tasks: Sequence[str], leaf_tasks: Iterable[str], python: str, **kwargs: Any
    ) -> None:
        kwargs.setdefault("task_id", TASK_ID)
        kwargs["retries"] = 0
        super().__init__(**kwargs)
        self.dag_tasks = list(dag_tasks)
        self.leaf_tasks = sorted(leaf_tasks)
        self.python = python
        self.as_teardown(on_failure_fail_dagrun=False)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        ti, run = context["ti"], context["dag_run"]
        crumbs = ti.get_task_breadcrumbs(run.dag_id, run.run_id)
        report = run_report(crumbs, self.dag_tasks, self.leaf_tasks)
        self.log.info("%s", describe(run.dag_id, run.run_id, report))
        if not os.environ.get(URL_ENV):
            self.log.info("%s is not set: no catalog configured, nothing published.", URL_ENV)
            return {"status": report["status"], "exit_code": None, "summary": {}}
        if not Path(self.python).is_file():
            raise AirflowFailException(
                f"the openmetadata environment's python {self.python} is missing: run "
                f"`make setup` (or set {PYTHON_ENV}), or set publish_lineage: false in "
                "bridge.yml. The DAG run's outcome is unchanged."
            )
        argv = status_command(
            self.python, run.dag_id, run.run_id, report, _ms(run.start_date), _ms(None)
        )
        code, output = self._publish(argv)
        summary = summary_of(output)
        errors = "; ".join(str(e) for e in summary.get("errors", [])) or output.strip()[-600:]
        if code == 0:
            self.log.info(
                "published %s of run %s to %s.%s",
                report["status"],
                run.run_id,
                PIPELINE_SERVICE,
                run.dag_id,
            )
        elif code == EXIT_RETRYABLE:
            self.log.warning(
                "catalog unavailable, status of run %s not published (the DAG run's outcome "
                "is unchanged; the next `onering catalog publish` sends it from the run's "
                "Dagster runs): %s",
                run.run_id,
                errors,
            )
        else:
            raise AirflowFailException(
                f"the catalog refused the status of run {run.run_id} (publisher exit {code}): "
                f"{errors}. The DAG run's outcome is unchanged."
            )
        return {"status": report["status"], "exit_code": code, "summary": summary}

    def _publish(self, argv: list[str]) -> tuple[int, str]:
        """Run the publisher; its output goes to this task's log. Exit code and output."""
        self.log.info("running %s", " ".join(argv))
        timeout = publish_timeout_s()
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return EXIT_RETRYABLE, f"the publisher ran past {timeout:g} s and was killed"
        output = proc.stdout + proc.stderr
        for line in output.strip().splitlines():
            self.log.info("publisher: %s", line)
        return proc.returncode, proc.stdout if proc.stdout.strip() else output
