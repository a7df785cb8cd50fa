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
        ({}, gate.ChampionScore("3", 0.5, False, "why"), gate.NOT_WORSE_THAN_CHAMPION),
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
    same = gate.ChampionScore("3", 0.71, True, months=(11, 12), flights=900)
    outcome = by_name(gate.evaluate(GOOD, same))[gate.NOT_WORSE_THAN_CHAMPION]
    assert outcome.passed
    assert "champion version 3's 0.7100 (both on the 900 test flights of months [11, 12])" in (
        outcome.summary
    )


def test_the_comparison_uses_the_new_models_auc_on_the_same_flights() -> None:
    """Its AUC over every test month is not what is compared: the shared months' is."""
    score = gate.ChampionScore("3", 0.70, True, model_auc=0.65, months=(12,), flights=10)
    outcome = by_name(gate.evaluate(GOOD, score))[gate.NOT_WORSE_THAN_CHAMPION]
    assert not outcome.passed and "AUC 0.6500 vs champion version 3's 0.7000" in outcome.summary


def tiny_onnx(name: str) -> bytes:
    """An ONNX model whose P(late) is its one float input (``probability`` = [1 - x, x])."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Sub", ["one", name], ["not_late"]),
            helper.make_node("Concat", ["not_late", name], ["probability"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def champion_for(train_months: str, onnx_inputs: list, onnx: bytes = b"") -> Champion:
    return Champion(
        version="4",
        run_id="r",
        metrics={"test_auc": 0.68},
        serving={"onnx_inputs": onnx_inputs, "fill_values": {"score": 0.5}},
        onnx=onnx,
        params={"train_months": train_months},
    )


def trained_on(test_months: tuple[int, ...], rows: pd.DataFrame, probs: list[float]):
    return SimpleNamespace(
        test_rows=rows, spec=TrainSpec((1,), test_months), spark_probs=np.array(probs)
    )


def test_both_are_scored_only_on_the_test_months_the_champion_did_not_train_on() -> None:
    """Review B2: a champion trained on some test months is scored on the others alone."""
    at = pd.to_datetime(["2013-10-10 12:00"] * 2 + ["2013-11-10 12:00"] * 4).tz_localize(
        inputs.TIMEZONE
    )
    rows = pd.DataFrame(
        {
            "sched_dep_at": at,
            # October: the champion's score is perfect (it trained on October); November not.
            "score": [0.0, 1.0, 0.9, 0.2, 0.1, 0.8],
            inputs.LABEL: [0, 1, 0, 0, 1, 1],
        }
    )
    champion = champion_for("1-10", [{"name": "score", "type": "float"}], tiny_onnx("score"))
    trained = trained_on((10, 11), rows, [0.1, 0.9, 0.1, 0.2, 0.8, 0.9])
    score = gate.score_champion(champion, trained)  # type: ignore[arg-type]
    assert score.rescored and score.months == (11,) and score.flights == 4
    assert score.auc == pytest.approx(0.25)  # November alone, not October's 1.0
    assert score.model_auc == pytest.approx(1.0)
    assert by_name(gate.evaluate(GOOD, score))[gate.NOT_WORSE_THAN_CHAMPION].passed


@pytest.mark.parametrize(
    ("train_months", "onnx_inputs", "why"),
    [
        ("1", [{"name": "no_such_feature", "type": "float"}], "inputs the training set lacks"),
        ("1-9", [{"name": "carrier", "type": "string"}], "trained on every test month [2]"),
    ],
)
def test_a_champion_that_cannot_be_scored_fairly_refuses_unless_allowed(
    train_months: str, onnx_inputs: list, why: str
) -> None:
    """Review B2: its logged AUC (other flights) is never compared; the gate refuses."""
    rows = pd.DataFrame({"carrier": ["UA", "AA"], inputs.LABEL: [0, 1]})
    trained = trained_on((2,), rows, [0.2, 0.8])
    score = gate.score_champion(champion_for(train_months, onnx_inputs), trained)  # type: ignore[arg-type]
    assert not score.rescored and why in score.why
    refused = by_name(gate.evaluate(GOOD, score))[gate.NOT_WORSE_THAN_CHAMPION]
    assert not refused.passed
    assert refused.summary.startswith("cannot compare with champion version 4: ")
    assert "allow_incomparable_champion" in refused.summary
    allowed = gate.GateConfig(allow_incomparable_champion=True)
    passed = by_name(gate.evaluate(GOOD, score, allowed))[gate.NOT_WORSE_THAN_CHAMPION]
    assert passed.passed and "passed because allow_incomparable_champion is set" in passed.summary


def test_held_out_months_of_one_class_cannot_be_compared() -> None:
    at = pd.to_datetime(["2013-11-10 12:00"] * 2).tz_localize(inputs.TIMEZONE)
    rows = pd.DataFrame({"sched_dep_at": at, "score": [0.1, 0.2], inputs.LABEL: [0, 0]})
    champion = champion_for("1-10", [{"name": "score", "type": "float"}], tiny_onnx("score"))
    score = gate.score_champion(champion, trained_on((11,), rows, [0.1, 0.2]))  # type: ignore[arg-type]
    assert not score.rescored and "of one class" in score.why


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


def test_a_champion_that_does_not_record_its_months_cannot_be_compared() -> None:
    champion = Champion("4", "r", {"test_auc": 0.68}, {"onnx_inputs": []}, b"", params={})
    rows = pd.DataFrame({"carrier": ["UA", "AA"], inputs.LABEL: [0, 1]})
    score = gate.score_champion(champion, trained_on((2,), rows, [0.2, 0.8]))  # type: ignore[arg-type]
    assert not score.rescored and "does not record the months" in score.why
