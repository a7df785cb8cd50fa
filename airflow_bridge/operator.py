"""The task: materialize its assets (and their checks) through Dagster, in one of three modes.

Nothing here imports Dagster at DAG parse time (see airflow_bridge/runs.py). How a failed
run ends the task: failed blocking checks and bad conf fail it without retry, a selection
that picks none of its assets skips it, any other failure (busy store, lost connection,
killed process) is retried as ``retries`` says.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_bridge.errors import (
    BridgeError,
    ChecksFailedError,
    InvalidRunRequestError,
    NothingSelectedError,
)
from airflow_bridge.formats import ENV_TAG
from airflow_bridge.runs import CliRun, cli_command, run_in_process, verdict

# What dag_run.conf may say: one partition, a range, and a Dagster selection.
CONF_KEYS = {"partition", "from", "to", "select"}


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
        env: str | None = None,
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
        self.env = env  # the environment the run builds (its onering/env tag), None: production
        self._dagster_run_id: str | None = None
        self._cli: CliRun | None = None

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
            raise InvalidRunRequestError("checks-only tasks need the in_process or subprocess mode")

        def remember(run_id: str) -> None:
            self._dagster_run_id = run_id
            self.log.info("launched Dagster run %s on %s", run_id, self.dagster_url)

        return run_graphql(
            self.dagster_url, keys, first, last, tags, headers=self._headers(), on_launch=remember
        )

    def on_kill(self) -> None:
        """A killed task ends the Dagster run behind it as CANCELED.

        ``dagster_graphql`` terminates the launched run on the webserver; ``subprocess``
        SIGTERMs the CLI child, which cancels its run (SIGKILL after a grace period).
        """
        if self.mode == "dagster_graphql" and self._dagster_run_id:
            from airflow_bridge.graphql import terminate

            self.log.info("terminating Dagster run %s", self._dagster_run_id)
            terminate(self.dagster_url, self._dagster_run_id, self._headers())
        elif self.mode == "subprocess" and self._cli is not None:
            self.log.info("terminating the onering CLI (it cancels its Dagster run)")
            self._cli.terminate()
        elif self.mode == "in_process":
            # During a Dagster step, Dagster's own SIGTERM handler interrupts the run (the
            # runner then records it CANCELED) and this is not called. Outside one, stop
            # the same way: an interrupt Dagster also treats as a cancel, and Airflow as a
            # retryable failure.
            raise KeyboardInterrupt("the Airflow task was killed (SIGTERM)")

    def _graphql_selected(self, expression: str) -> list[str]:
        """``dagster_graphql``: the worker has no Dagster, the manifest answers ``select``."""
        from airflow_bridge.manifest import load
        from airflow_bridge.selection import select

        if self.manifest_path is None:
            raise InvalidRunRequestError(
                "conf 'select' needs the exported manifest beside the DAG file."
            )
        try:
            chosen = select(expression, load(Path(self.manifest_path)).assets)
        except BridgeError as err:
            raise InvalidRunRequestError(str(err)) from err
        keys = [k for k in self.asset_keys if k in chosen]
        if not keys:
            raise NothingSelectedError(f"selection {expression!r} picks none of this task's assets")
        return keys

    def _when(self, context: Any) -> datetime | None:
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is not None and end is not None and end > start:
            return start
        return context.get("logical_date")

    def _scope(self, context: Any) -> tuple[str | None, str | None, str | None]:
        """The conf selection and partition range this run asks of this task.

        Bad conf fails the task (no retry); a scheduled run past the last partition skips.
        """
        from airflow_bridge.partitions import PartitionRangeError, partition_range

        dag_run = context["dag_run"]
        conf = dict(dag_run.conf or {})
        unknown = sorted(set(conf) - CONF_KEYS)
        if unknown:
            raise InvalidRunRequestError(
                f"dag_run.conf has unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(CONF_KEYS))}."
            )
        try:
            bounds = partition_range(
                self.partitions, conf, self._when(context), context.get("partition_key")
            )
        except PartitionRangeError as err:
            if conf or str(dag_run.run_type).lower().endswith("manual"):
                raise InvalidRunRequestError(str(err)) from err
            # A scheduled run past the last declared partition has nothing to build.
            raise NothingSelectedError(f"{err} Nothing to materialize.") from err
        except BridgeError as err:
            raise InvalidRunRequestError(str(err)) from err
        first, last = bounds or (None, None)
        select = conf.get("select")
        return (str(select) if select else None), first, last

    def _run(self, context: Any) -> tuple[dict[str, Any], list[str] | None]:
        dag_run = context["dag_run"]
        select, first, last = self._scope(context)
        tags = {
            "airflow/dag_id": dag_run.dag_id,
            "airflow/run_id": dag_run.run_id,
            "airflow/task_id": self.task_id,
            "airflow/try_number": str(context["ti"].try_number),
        }
        if self.env:
            tags[ENV_TAG] = self.env
        what = "checks" if self.checks_only else ("assets" if self.run_checks else "assets_only")
        keys = self.asset_keys
        span = [first, last] if first and last else None
        self.log.info(
            "materializing %s (select %r) for %s..%s (%s)", keys, select, first, last, self.mode
        )
        if self.mode == "dagster_graphql":
            keys = self._graphql_selected(select) if select else keys
            return self._run_graphql(keys, first, last, tags), span
        if self.mode == "subprocess":
            self._cli = CliRun(cli_command(self.python, keys, first, last, tags, what, select))
            return self._cli.run(), span
        return run_in_process(keys, first, last, tags, what, select=select), span

    def execute(self, context: Any) -> dict[str, Any]:
        try:
            summary, span = self._run(context)
            for check in summary.get("checks", []):
                if not check["passed"] and not check.get("blocking", True):
                    self.log.warning(
                        "check %s:%s failed (non-blocking): %s",
                        check["asset"],
                        check["check"],
                        check["description"],
                    )
            verdict(summary)
        except NothingSelectedError as err:
            raise AirflowSkipException(str(err)) from err
        except (ChecksFailedError, InvalidRunRequestError) as err:
            # Bad data or bad conf: a retry would fail the same way.
            raise AirflowFailException(str(err)) from err
        return {
            "run_id": summary["run_id"],
            "rows": summary["rows"],
            "checks_passed": sum(1 for c in summary["checks"] if c["passed"]),
            "checks_failed": sum(1 for c in summary["checks"] if not c["passed"]),
            "partitions": span,
        }
