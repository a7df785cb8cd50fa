"""What a run did: the summary the CLI, `make demo`, the bench and the Airflow bridge read.

A failed run is classified here once (blocking checks failed: a data problem; anything
else: retryable), so every caller decides the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from onering_assets.errors import not_retryable, onering_errors


@dataclass
class RunSummary:
    """What a run did, and whether it failed on data (blocking checks) or otherwise.

    ``failures`` are every failed step; ``check_steps`` the steps among them that stopped
    because blocking checks failed or on an error a retry cannot fix (a data problem:
    re-running the same data fails the same way); the others are ``errors`` (a busy store,
    a lost connection, a killed process...), which a retry may fix.
    """

    success: bool
    seconds: float
    run_id: str
    rows: dict[str, Any] = field(default_factory=dict)
    rejected: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    blocking: dict[tuple[str, str], bool] = field(default_factory=dict)
    check_steps: list[str] = field(default_factory=list)
    status: str = ""
    # Per asset: rejected rows by reason, and the query that shows them.
    reject_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    rejects_query: dict[str, str] = field(default_factory=dict)
    # Assets the run was to materialize that were neither materialized nor failed.
    skipped: list[str] = field(default_factory=list)
    # (asset, check) of failed checks whose severity is WARN: reported, never a failure.
    warned: set[tuple[str, str]] = field(default_factory=set)

    @property
    def checks_passed(self) -> int:
        return sum(1 for c in self.checks if c[2])

    def failed_checks(self, blocking: dict[tuple[str, str], bool] | None = None) -> list[str]:
        """``asset:check`` of each failed blocking check."""
        blocking = blocking or self.blocking
        return [f"{a}:{c}" for a, c, p, _ in self.checks if not p and blocking.get((a, c), True)]

    def errors(self) -> list[str]:
        """Failed steps that did not fail on blocking checks."""
        data = tuple(f"{step}: " for step in self.check_steps)
        return [f for f in self.failures if not f.startswith(data)]

    def to_dict(self, blocking: dict[tuple[str, str], bool] | None = None) -> dict[str, Any]:
        """JSON-safe summary (what `onering materialize --json` prints and Airflow keeps).

        ``retryable`` is the one verdict every bridge mode acts on: the run failed, and
        not because a blocking check failed.
        """
        blocking = blocking or self.blocking
        failed_checks = self.failed_checks(blocking)
        return {
            "success": self.success,
            "status": self.status or ("SUCCESS" if self.success else "FAILURE"),
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "rejected": self.rejected,
            "reject_reasons": self.reject_reasons,
            "rejects_query": self.rejects_query,
            "skipped": self.skipped,
            "checks": [
                {
                    "asset": a,
                    "check": c,
                    "passed": p,
                    "description": d,
                    "blocking": blocking.get((a, c), True),
                }
                for a, c, p, d in self.checks
            ],
            "failures": self.failures,
            "failed_checks": failed_checks,
            "errors": self.errors(),
            "retryable": not self.success and not failed_checks and not self.check_steps,
        }


def _cause(error: Any) -> Any:
    """The OneRing error nearest the top of the chain (it says what to do), else the root.

    A ``ConfigError(…) from JSONDecodeError`` must be reported as the ConfigError: its
    message names the file and the fix, and its class says a retry cannot help.
    """
    ours, chain = onering_errors(), []
    while error is not None:
        chain.append(error)
        error = error.cause
    return next((e for e in chain if e.cls_name in ours), chain[-1] if chain else None)


def _step_failure(summary: RunSummary, event: Any) -> None:
    data = event.step_failure_data
    error = _cause(data.error)
    message = error.message.strip() if error else "failed"
    if error is not None:
        # A OneRing error is its own sentence; Dagster prefixes the class path.
        message = message.removeprefix(f"onering_assets.errors.{error.cls_name}: ")
    summary.failures.append(f"{event.step_key}: {message}")
    user = data.user_failure_data
    # factory.build_table_asset raises dg.Failure(metadata={"failed_checks": ...}); a
    # OneRing error a retry cannot fix (a corrupt lake file, a bad declaration) counts as
    # a data problem too.
    failed_checks = user is not None and "failed_checks" in (user.metadata or {})
    if failed_checks or (error is not None and error.cls_name in not_retryable()):
        summary.check_steps.append(str(event.step_key))


def _materialized(summary: RunSummary, mat: dg.AssetMaterialization) -> None:
    key = mat.asset_key.to_user_string()
    rows = mat.metadata.get("rows") or mat.metadata.get("dagster/row_count")
    summary.rows[key] = rows.value if rows else None
    rejected, query = mat.metadata.get("rejected_rows_total"), mat.metadata.get("rejects_query")
    if rejected is not None:
        summary.rejected[key] = rejected.value
    if query is not None:
        summary.rejects_query[key] = str(query.value)
    reasons = mat.metadata.get("rejects_by_reason")
    if reasons is not None and isinstance(reasons.value, dict):
        summary.reject_reasons[key] = {
            str(k): v for k, v in reasons.value.items() if isinstance(v, int)
        }


def summarize(result: dg.ExecuteInProcessResult, seconds: float) -> RunSummary:
    summary = RunSummary(result.success, seconds, result.run_id)
    summary.status = result.dagster_run.status.value
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            _materialized(summary, event.materialization)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.asset_check_evaluation_data
            if not check.passed and check.severity == dg.AssetCheckSeverity.WARN:
                summary.warned.add((check.asset_key.to_user_string(), check.check_name))
            summary.checks.append(
                (
                    check.asset_key.to_user_string(),
                    check.check_name,
                    check.passed,
                    check.description or "",
                )
            )
        elif event.event_type_value == "STEP_FAILURE":
            _step_failure(summary, event)
    failed = {f.split(":", 1)[0] for f in summary.failures}
    layer = result.job_def.asset_layer
    # Its own step failed (a multi-asset's step is named after its op, not the asset): not
    # "skipped because upstream failed".
    summary.skipped = sorted(
        k.to_user_string()
        for k in layer.selected_asset_keys
        if k.to_user_string() not in summary.rows
        and layer.asset_graph.get(k).assets_def.node_def.name not in failed
    )
    return summary


INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def _interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a signal (SIGTERM or SIGINT) stopped the run, rather than a failing step.

    Also when the interrupt surfaced wrapped in another error (an extension module being
    imported turns it into an ImportError).
    """
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.step_failure_data
            if data.error_source.value == "INTERRUPT":
                return True
            error = data.error
            while error is not None:
                if error.cls_name in INTERRUPTS or any(n in error.message for n in INTERRUPTS):
                    return True
                error = error.cause
        elif event.event_type_value == "PIPELINE_FAILURE":
            reason = getattr(event.event_specific_data, "failure_reason", None)
            if reason is not None and reason.value == "UNEXPECTED_TERMINATION":
                return True
    return False


def record_cancel(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> bool:
    """Record a run a signal stopped as CANCELED (what a kill is), not FAILURE.

    During a run Dagster maps SIGTERM onto its own SIGINT handler (no other handler can
    run then) and records an interrupt it was not asked for as a failure; this records the
    termination request it was. The run's steps have already cleaned up.
    """
    if result.success or not _interrupted(result):
        return False
    instance.report_run_canceled(
        result.dagster_run, message="Terminated by a signal (SIGTERM/SIGINT) during the run."
    )
    return True
