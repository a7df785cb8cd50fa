"""Steps that run in another Python environment (Flink, Airbyte) through Dagster Pipes."""

import os
from pathlib import Path
from typing import Any

import dagster as dg


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
