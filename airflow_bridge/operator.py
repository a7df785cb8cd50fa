"""The task: materialize its assets (and their checks) through Dagster, in one of two modes.

Nothing here imports Dagster at DAG parse time: ``in_process`` imports OneRing's runner when
the task executes, ``subprocess`` runs the ``onering`` CLI of a configured interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_bridge.errors import BridgeError

# What dag_run.conf may say: one partition, a range, and a Dagster selection.
CONF_KEYS = {"partition", "from", "to", "select"}


def failure_message(summary: dict[str, Any]) -> str:
    """Each failed blocking check and failed step, one per line."""
    lines = [f"Dagster run {summary.get('run_id')} failed:"]
    lines += [
        f"- check {c['asset']}:{c['check']} failed: {c['description']}"
        for c in summary.get("checks", [])
        if not c["passed"] and c.get("blocking", True)
    ]
    lines += [f"- step {f}" for f in summary.get("failures", [])]
    return "\n".join(lines)


def run_in_process(
    keys: Sequence[str], first: str | None, last: str | None, tags: dict[str, str], what: str
) -> dict[str, Any]:
    """``what``: ``assets`` (with checks), ``assets_only`` or ``checks`` (alone)."""
    from onering_assets.runner import run_keys

    return run_keys(list(keys), first, last, tags=tags, what=what).to_dict()


def run_subprocess(
    python: str,
    keys: Sequence[str],
    first: str | None,
    last: str | None,
    tags: dict[str, str],
    what: str,
) -> dict[str, Any]:
    """The same, through the ``onering`` CLI of another interpreter."""
    select = " or ".join(f'key:"{k}"' for k in keys)
    cli = [python, "-m", "onering_assets.cli"]
    if what == "checks":
        cmd = [*cli, "check", "--select", select, "--json"]
    else:
        cmd = [*cli, "materialize", "--select", select, "--no-upstream", "--json"]
        if first and last:
            cmd += ["--from", first, "--to", last]
        if what == "assets_only":
            cmd.append("--no-checks")
    for key, value in sorted(tags.items()):
        cmd += ["--tag", f"{key}={value}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BridgeError(
            f"`onering materialize` exited {proc.returncode} without a summary:\n"
            f"{proc.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


class DagsterAssetsOperator(BaseOperator):
    """Materialize OneRing assets for the run's partitions; fail on blocking checks."""

    template_fields: Collection[str] = ()

    def __init__(
        self,
        *,
        asset_keys: Sequence[str],
        partitions: dict[str, str] | None,
        mode: str = "in_process",
        python: str = "python",
        run_checks: bool = True,
        checks_only: bool = False,
        dagster_url: str = "http://127.0.0.1:3000",
        dagster_token_env: str | None = None,
        manifest_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.asset_keys = list(asset_keys)
        self.partitions = partitions
        self.mode = mode
        self.python = python
        self.run_checks = run_checks
        self.checks_only = checks_only
        self.dagster_url = dagster_url
        self.dagster_token_env = dagster_token_env
        self.manifest_path = manifest_path
        self._dagster_run_id: str | None = None

    def _headers(self) -> dict[str, str] | None:
        if not self.dagster_token_env:
            return None
        token = os.environ.get(self.dagster_token_env)
        if not token:
            raise AirflowFailException(f"{self.dagster_token_env} is not set in the worker.")
        return {"Authorization": f"Bearer {token}"}

    def _run_graphql(
        self, keys: list[str], first: str | None, last: str | None, tags: dict[str, str]
    ) -> dict[str, Any]:
        from airflow_bridge.graphql import run_graphql

        if self.checks_only:
            raise AirflowFailException("checks-only tasks need the in_process or subprocess mode")

        def remember(run_id: str) -> None:
            self._dagster_run_id = run_id
            self.log.info("launched Dagster run %s on %s", run_id, self.dagster_url)

        return run_graphql(
            self.dagster_url, keys, first, last, tags, headers=self._headers(), on_launch=remember
        )

    def on_kill(self) -> None:
        """A killed task terminates the Dagster run it launched."""
        if self.mode == "dagster_graphql" and self._dagster_run_id:
            from airflow_bridge.graphql import terminate

            terminate(self.dagster_url, self._dagster_run_id, self._headers())

    def _selected(self, conf: dict[str, Any]) -> list[str]:
        """This task's assets, narrowed by a Dagster selection in ``dag_run.conf``."""
        expression = conf.get("select")
        if not expression:
            return self.asset_keys
        from airflow_bridge.manifest import load
        from airflow_bridge.selection import select

        if self.manifest_path is None:
            raise BridgeError("conf 'select' needs the exported manifest beside the DAG file.")
        chosen = select(str(expression), load(Path(self.manifest_path)).assets)
        return [k for k in self.asset_keys if k in chosen]

    def _when(self, context: Any) -> datetime | None:
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is not None and end is not None and end > start:
            return start
        return context.get("logical_date")

    def _scope(self, context: Any) -> tuple[list[str], str | None, str | None]:
        """The assets and partition range this run asks of this task.

        Bad conf fails the task (no retry); a selection that leaves none of the task's
        assets, or a scheduled run past the last partition, skips it.
        """
        from airflow_bridge.partitions import PartitionRangeError, partition_range

        dag_run = context["dag_run"]
        conf = dict(dag_run.conf or {})
        unknown = sorted(set(conf) - CONF_KEYS)
        if unknown:
            raise AirflowFailException(
                f"dag_run.conf has unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(CONF_KEYS))}."
            )
        try:
            keys = self._selected(conf)
        except BridgeError as err:
            raise AirflowFailException(str(err)) from err
        if not keys:
            raise AirflowSkipException(
                f"dag_run.conf select {conf['select']!r} picks none of this task's assets"
            )
        try:
            bounds = partition_range(
                self.partitions, conf, self._when(context), context.get("partition_key")
            )
        except PartitionRangeError as err:
            if conf or str(dag_run.run_type).lower().endswith("manual"):
                raise AirflowFailException(str(err)) from err
            # A scheduled run past the last declared partition has nothing to build.
            raise AirflowSkipException(f"{err} Nothing to materialize.") from err
        except BridgeError as err:
            raise AirflowFailException(str(err)) from err
        first, last = bounds or (None, None)
        return keys, first, last

    def execute(self, context: Any) -> dict[str, Any]:
        dag_run = context["dag_run"]
        keys, first, last = self._scope(context)
        tags = {
            "airflow/dag_id": dag_run.dag_id,
            "airflow/run_id": dag_run.run_id,
            "airflow/task_id": self.task_id,
            "airflow/try_number": str(context["ti"].try_number),
        }
        self.log.info("materializing %s for %s..%s (%s)", keys, first, last, self.mode)
        what = "checks" if self.checks_only else ("assets" if self.run_checks else "assets_only")
        if self.mode == "subprocess":
            summary = run_subprocess(self.python, keys, first, last, tags, what)
        elif self.mode == "dagster_graphql":
            summary = self._run_graphql(keys, first, last, tags)
        else:
            summary = run_in_process(keys, first, last, tags, what)
        for check in summary.get("checks", []):
            if not check["passed"] and not check.get("blocking", True):
                self.log.warning(
                    "check %s:%s failed (non-blocking): %s",
                    check["asset"],
                    check["check"],
                    check["description"],
                )
        if not summary["success"]:
            # A failed blocking check is a data problem: retrying cannot fix it.
            raise AirflowFailException(failure_message(summary))
        return {
            "run_id": summary["run_id"],
            "rows": summary["rows"],
            "checks_passed": sum(1 for c in summary["checks"] if c["passed"]),
            "checks_failed": sum(1 for c in summary["checks"] if not c["passed"]),
            "partitions": [first, last] if first else None,
        }
