"""The gate, the split and the training spec as plain functions (no Spark, no MLflow)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from onering_assets.errors import ConfigError
from onering_assets.ml import gate, inputs
from onering_assets.ml.registry import Champion
from onering_assets.ml.training import TrainSpec, month_range, split

GOOD = {"test_auc": 0.70, "baseline_auc": 0.62, "onnx_max_abs_diff": 3e-7, "test_rows": 1000.0}


def by_name(outcomes: list) -> dict:
    return {o.name: o for o in outcomes}


def test_a_good_model_passes_every_check_without_a_champion() -> None:
    outcomes = by_name(gate.evaluate(GOOD, None))
    assert all(o.passed for o in outcomes.values())
    assert outcomes[gate.NOT_WORSE_THAN_CHAMPION].summary == (
        "no champion yet: nothing to compare with"
    )
    assert gate.refusals(list(outcomes.values())) == []


@pytest.mark.parametrize(
    ("metrics", "champion", "failed"),
    [
        ({"onnx_max_abs_diff": 2e-5}, None, gate.ONNX_PARITY),
        ({"test_auc": 0.6599}, None, gate.AUC_FLOOR),
        ({"baseline_auc": 0.70}, None, gate.BEATS_BASELINE),
        ({}, gate.ChampionScore("3", 0.7101, True), gate.NOT_WORSE_THAN_CHAMPION),
    ],
)
def test_each_check_refuses_on_its_own_threshold(
    metrics: dict, champion: gate.ChampionScore | None, failed: str
) -> None:
    outcomes = gate.evaluate(GOOD | metrics, champion)
    assert [o.name for o in outcomes if not o.passed] == [failed]
    (reason,) = gate.refusals(outcomes)
    assert reason.startswith(f"{failed}: ")


def test_champion_tolerance_is_inclusive_and_says_how_the_champion_was_scored() -> None:
    outcome = by_name(gate.evaluate(GOOD, gate.ChampionScore("3", 0.71, True)))[
        gate.NOT_WORSE_THAN_CHAMPION
    ]
    assert outcome.passed
    assert "champion version 3's 0.7100 (re-scored on the same test flights)" in outcome.summary
    outcome = by_name(gate.evaluate(GOOD, gate.ChampionScore("3", 0.75, False)))[
        gate.NOT_WORSE_THAN_CHAMPION
    ]
    assert not outcome.passed and "its logged test AUC" in outcome.summary


@pytest.mark.parametrize(
    ("train_months", "onnx_inputs", "why"),
    [
        ("1", [{"name": "no_such_feature", "type": "float"}], "its inputs are not all in the set"),
        ("1-9", [{"name": "carrier", "type": "string"}], "it was trained on test month(s) [2]"),
    ],
)
def test_a_champion_that_cannot_be_rescored_fairly_is_compared_by_its_logged_auc(
    train_months: str, onnx_inputs: list, why: str
) -> None:
    champion = Champion(
        version="4",
        run_id="r",
        metrics={"test_auc": 0.68},
        serving={"onnx_inputs": onnx_inputs},
        onnx=b"",
        params={"train_months": train_months},
    )
    trained = SimpleNamespace(
        test_rows=pd.DataFrame({"carrier": ["UA", "AA"], inputs.LABEL: [0, 1]}),
        spec=TrainSpec((1,), (2,)),
    )
    score = gate.score_champion(champion, trained)  # type: ignore[arg-type]
    assert score == gate.ChampionScore("4", 0.68, False, why)
    assert score.how == f"its logged test AUC: {why}"


def test_declared_checks_block_and_state_their_thresholds() -> None:
    decls = {d.name: d for d in gate.gate_decls()}
    assert all(d.blocking for d in decls.values())
    assert "1e-05" in decls[gate.ONNX_PARITY].description
    assert "0.66" in decls[gate.AUC_FLOOR].description
    assert "0.704" in decls[gate.AUC_FLOOR].description


@pytest.mark.parametrize(
    ("text", "months"), [("1-9", tuple(range(1, 10))), ("2", (2,)), ("1, 3-4", (1, 3, 4))]
)
def test_month_ranges(text: str, months: tuple[int, ...]) -> None:
    assert month_range(text) == months


@pytest.mark.parametrize("text", ["0", "13", "jan", "3-1", ""])
def test_bad_month_ranges_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a month range such as 1-9"):
        month_range(text)


def test_a_split_must_be_in_time_and_disjoint() -> None:
    with pytest.raises(ConfigError, match="overlap: \\[2\\]"):
        TrainSpec((1, 2), (2, 3)).validate()
    with pytest.raises(ConfigError, match="test months must follow the train months"):
        TrainSpec((5,), (2,)).validate()


def flights(months: list[int], late: list[int]) -> pd.DataFrame:
    stamps = pd.to_datetime([f"2013-{m:02d}-15 12:00" for m in months]).tz_localize(inputs.TIMEZONE)
    return pd.DataFrame({"sched_dep_at": stamps, inputs.LABEL: np.array(late, dtype="int8")})


def test_split_by_new_york_month() -> None:
    train, test = split(flights([1, 1, 2, 2, 3], [0, 1, 0, 1, 1]), TrainSpec((1,), (2,)))
    assert len(train) == 2 and len(test) == 2
    assert list(test.sched_dep_at.dt.month) == [2, 2]


def test_a_split_side_with_one_class_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"the test months \[3\] hold 1 labelled flights"):
        split(flights([1, 1, 3], [0, 1, 1]), TrainSpec((1,), (3,)))
    with pytest.raises(ConfigError, match=r"the train months \[4\] hold 0 labelled flights"):
        split(flights([1, 1, 3], [0, 1, 1]), TrainSpec((4,), (5,)))
