"""Run a Great Expectations 1.x suite stored under ``platform/quality/great_expectations``.

dagster-ge does not support GX 1.x, so OneRing runs GX itself. GX is imported here, at
check time only: importing it costs seconds and must stay out of definitions load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onering_assets.checks.names import GE_SUITE
from onering_assets.checks.outcome import Outcome
from onering_assets.errors import ConfigError
from onering_assets.settings import PLATFORM_DIR

if TYPE_CHECKING:
    import pandas as pd

SUITES_DIR = PLATFORM_DIR / "quality" / "great_expectations" / "expectations"


def suite_path(suite: str, suites_dir: Path = SUITES_DIR) -> Path | None:
    path = suites_dir / f"{suite}.json"
    return path if path.exists() else None


def _build_suite(path: Path) -> Any:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    try:
        spec = json.loads(path.read_text())
        expectations = [
            ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs", {})).to_domain_obj()
            for e in spec["expectations"]
        ]
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(f"{path}: not a valid expectation suite: {err}") from err
    return gx.ExpectationSuite(name=spec.get("name", path.stem), expectations=expectations)


def _describe(result: dict[str, Any]) -> str:
    config = result["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    detail = result.get("result", {})
    count = detail.get("unexpected_count")
    suffix = f" ({count} unexpected)" if count else ""
    return f"{config['type']}({', '.join(f'{k}={v}' for k, v in kwargs.items())}){suffix}"


def run_suite(suite: str, frame: pd.DataFrame, suites_dir: Path = SUITES_DIR) -> Outcome:
    """Validate ``frame`` against the named suite; the outcome lists each failed expectation."""
    path = suite_path(suite, suites_dir)
    if path is None:
        raise ConfigError(f"No expectation suite {suite!r} in {suites_dir}.")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        context.data_sources.add_pandas("onering")
        .add_dataframe_asset(suite)
        .add_batch_definition_whole_dataframe("whole")
    )
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
    report = batch.validate(_build_suite(path), result_format="SUMMARY").to_json_dict()
    failed = [_describe(r) for r in report["results"] if not r["success"]]
    total = len(report["results"])
    if failed:
        return Outcome.failed(
            GE_SUITE,
            f"suite {suite}: {len(failed)} of {total} expectations failed: {'; '.join(failed)}",
            failed,
            {"suite": suite, "rows": len(frame)},
        )
    return Outcome(
        GE_SUITE,
        True,
        f"suite {suite}: all {total} expectations passed.",
        metadata={"suite": suite, "rows": len(frame)},
    )
