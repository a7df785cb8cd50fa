"""The ``ml/drift_report`` asset's wiring and its refusals, on the shared Jan–Feb state.

The successful report (a real champion, its training reference, the lake files and the
metadata) is tested in tests/ml/test_app.py, on the state whose champion the Bento server
serves, so that one champion and one server serve both. Here: what a user sees before
anything was trained, what the check says, and how a ranged run records its months.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from onering_assets.definitions import build_definitions
from onering_assets.ml.drift import ColumnDrift, DriftSummary
from onering_assets.ml.drift_assets import (
    DRIFT_KEY,
    DRIFTED_COLUMNS_SHARE,
    GROUP,
    MODEL_KEY,
    TRAINING_SET_KEY,
    Reference,
    run_metadata,
    share_outcome,
)
from onering_assets.partitions import MONTHLY
from onering_assets.runner import execute
from onering_assets.settings import Settings
from tests.ml.conftest import copy_state


def column(name: str, score: float, drifted: bool) -> ColumnDrift:
    return ColumnDrift(name, "numerical", "Wasserstein distance (normed)", score, 0.1, drifted)


CALM = DriftSummary(
    (column("a", 0.01, False), column("b", 0.2, True), column("c", 0.0, False)), 1000, 500
)
HALF = DriftSummary((column("a", 0.01, False), column("b", 0.2, True)), 1000, 500)
DRIFTED = DriftSummary((column("a", 0.3, True), column("b", 0.2, True)), 1000, 500)


@pytest.fixture(scope="module")
def settings(ml_base_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the Jan–Feb state with its features, on which nothing was trained."""
    return Settings(profile="local", state_dir=copy_state(ml_base_state, tmp_path_factory, "drift"))


@pytest.fixture(scope="module")
def defs(settings: Settings) -> dg.Definitions:
    return build_definitions(settings)


def test_the_asset_is_monthly_in_its_own_group_after_the_training_set_and_model(
    defs: dg.Definitions,
) -> None:
    node = defs.resolve_asset_graph().get(DRIFT_KEY)
    assert node.partitions_def == MONTHLY
    assert node.group_name == GROUP == "drift"
    assert set(node.parent_keys) == {TRAINING_SET_KEY, MODEL_KEY}
    assert "Wasserstein" in (node.description or "") and "drift_share 0.5" in (
        node.description or ""
    )
    graph = defs.resolve_asset_graph()
    checks = [c for c in graph.asset_check_keys if c.asset_key == DRIFT_KEY]
    assert [c.name for c in checks] == [DRIFTED_COLUMNS_SHARE]
    assert not graph.get_check_spec(checks[0]).blocking


def test_without_a_champion_the_report_says_what_to_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings
) -> None:
    summary = execute(
        defs, instance, assets={DRIFT_KEY}, first="2013-02", last="2013-02", progress=False
    )
    assert not summary.success
    message = " ".join(str(f) for f in summary.failures)
    assert "no champion of flight_late_arrival" in message
    assert "onering materialize --select 'key:\"ml/flight_late_arrival\"'" in message
    # Nothing was written, and the registry was not created by asking.
    assert not (settings.lake_dir / "ml" / "drift").exists()
    assert not (settings.state_dir / "mlflow" / "mlflow.db").exists()


def test_the_check_alone_names_months_without_a_report(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    check = dg.AssetCheckKey(DRIFT_KEY, DRIFTED_COLUMNS_SHARE)
    summary = execute(
        defs, instance, checks={check}, first="2013-01", last="2013-02", progress=False
    )
    results = [c for c in summary.checks if c[1] == DRIFTED_COLUMNS_SHARE]
    assert len(results) == 1 and not results[0][2]
    assert "no drift report for 2013-01, 2013-02 yet" in results[0][3]


def test_the_share_check_warns_per_month_from_evidently_s_drift_share() -> None:
    calm = share_outcome({"2013-03": CALM})
    assert calm.passed and calm.metadata["share_by_month"] == {"2013-03": 0.3333}
    # Evidently's dataset verdict is share >= drift_share: half the columns is drift.
    assert HALF.dataset_drift and not share_outcome({"2013-03": HALF}).passed
    failed = share_outcome({"2013-03": CALM, "2013-07": DRIFTED})
    assert not failed.passed and list(failed.sample) == ["2013-07"]
    assert failed.summary == "2013-07: 2 of 2 columns drifted (100% >= 0.5): a, b"
    assert failed.to_result(DRIFT_KEY, blocking=False).severity == dg.AssetCheckSeverity.WARN


def test_a_ranged_run_records_only_what_is_true_of_every_month() -> None:
    import pandas as pd

    ref = Reference(pd.DataFrame(), "3", (1, 2))
    reports = {"2013-03": HALF, "2013-07": DRIFTED}
    uris = {m: {"html": f"file:///lake/ml/drift/{m}/report.html", "json": ""} for m in reports}
    meta = run_metadata(reports, uris, ref)
    assert "share_of_drifted_columns" not in meta
    assert meta["share_by_month"].value == {"2013-03": 0.5, "2013-07": 1.0}
    assert meta["drifted_columns_by_month"].value == {"2013-03": ["b"], "2013-07": ["a", "b"]}
    assert meta["model_version"] == "3"
    one = run_metadata({"2013-07": reports["2013-07"]}, uris, ref)
    assert one["month"] == "2013-07" and one["share_of_drifted_columns"] == 1.0
    assert one["column_tests"].value["a"] == {
        "test": "Wasserstein distance (normed)",
        "score": 0.3,
        "threshold": 0.1,
        "drifted": True,
    }


def test_checks_alone_over_no_report_never_pass() -> None:
    """Review: the check alone without partitions used to pass having checked no month."""
    from onering_assets.ml.drift_assets import share_outcome

    outcome = share_outcome({})
    assert not outcome.passed
    assert "ml/drift_report has not been materialized yet" in outcome.summary


def test_the_report_key_follows_the_month_rows_and_the_reference() -> None:
    """A report is reused only when its key matches: any changed row or champion changes it."""
    import pandas as pd

    from onering_assets.ml.drift_assets import report_key

    rows = pd.DataFrame({"carrier": ["UA", "AA"], "carrier_late_rate_28d": [0.1, 0.2]})
    ref = Reference(pd.DataFrame(), "3", (1,), "reference-1")
    key = report_key(ref, rows)
    assert key == report_key(ref, rows.copy())
    assert key != report_key(ref, rows.assign(carrier_late_rate_28d=[0.1, 0.25]))
    assert key != report_key(Reference(pd.DataFrame(), "4", (1,), "reference-2"), rows)
