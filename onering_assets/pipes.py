"""Steps that run in another Python environment (Flink, Airbyte) through Dagster Pipes.

They share the launch (:func:`run_module` in an :func:`isolated_env`) and the landing of
what the other environment produced: every result checked first, nothing written when a
blocking check fails, then each written to the lake (:func:`land_checked`).
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from onering_assets.checks.outcome import Outcome, failures_message
from onering_assets.checks.specs import CheckDecl, blocking_failures, emit
from onering_assets.resources import LakeResource


def isolated_env(python: str, **extra: str) -> dict[str, str]:
    """The child's environment: its own venv first, none of the main environment's paths.

    ``PipesSubprocessClient`` starts from this process's environment, so ``PYTHONPATH`` and
    ``VIRTUAL_ENV`` are overridden; ``extra`` adds the engine's own variables.
    """
    venv = str(Path(python).parent.parent)
    return {
        "PYTHONPATH": "",
        "VIRTUAL_ENV": venv,
        "PATH": f"{venv}/bin:{os.environ.get('PATH', '/usr/bin:/bin')}",
        **extra,
    }


def run_module(
    context: dg.AssetExecutionContext,
    *,
    python: str,
    module: str,
    cwd: Path,
    extras: dict[str, Any],
    env: dict[str, str],
) -> dict[dg.AssetKey, dict[str, Any]]:
    """Run ``python -m module`` through Pipes; the metadata it reported, per asset.

    Raises:
        DagsterPipesExecutionError: the process exited with an error.
    """
    client = dg.PipesSubprocessClient(cwd=str(cwd))
    invocation = client.run(context=context, command=[python, "-m", module], extras=extras, env=env)
    return {
        r.asset_key: dict(r.metadata or {})
        for r in invocation.get_results()
        if isinstance(r, dg.MaterializeResult) and r.asset_key is not None
    }


@dataclass(frozen=True)
class Produced:
    """One asset's result from the other environment, its check outcome and metadata."""

    key: dg.AssetKey
    table: str  # its folder in the lake, under the layer
    data: pa.Table
    outcome: Outcome
    metadata: dict[str, Any]


def land_checked(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    layer: str,
    decls: list[CheckDecl],
    produced: list[Produced],
    what: str,
) -> Iterator[Any]:
    """Emit every outcome; on a blocking failure publish nothing, else write each result."""
    for result in produced:
        yield from emit(context, result.key, decls, [result.outcome])
    failures = [o for r in produced for o in blocking_failures(decls, [r.outcome])]
    if failures:
        raise dg.Failure(
            description=(
                f"{what}: {len(failures)} blocking check(s) failed; nothing was published, "
                f"the previous files stay.\n{failures_message(failures)}"
            ),
            allow_retries=False,
        )
    for result in produced:
        path = lake.write(layer, result.table, None, result.data)
        yield dg.MaterializeResult(
            asset_key=result.key,
            metadata={**result.metadata, "rows": result.data.num_rows, "path": path},
        )
