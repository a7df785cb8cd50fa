"""The model-input contract (``onering_assets.ml.inputs``) shared by training, serving, drift."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from onering_assets.errors import ConfigError
from onering_assets.ml import inputs


def test_model_columns_are_request_fields_derived_fields_then_views_features() -> None:
    columns = inputs.model_columns()
    assert columns[:5] == ("carrier", "origin", "dest", "dep_hour", "day_of_week")
    assert columns[5:] == inputs.feature_columns()
    assert [r.ref for r in inputs.feature_refs()][:2] == [
        "carrier_stats:carrier_flights_28d",
        "carrier_stats:carrier_late_rate_28d",
    ]
    types = {i["name"]: i["type"] for i in inputs.onnx_inputs()}
    assert types["dest"] == "string" and types["weather_visib"] == "float"


@pytest.mark.parametrize(
    ("when", "hour", "weekday", "predicted"),
    [
        ("2013-07-01T08:00", 8, 1, datetime(2013, 7, 1, 10, 0, tzinfo=UTC)),  # EDT
        ("2013-01-06T08:00", 8, 7, datetime(2013, 1, 6, 11, 0, tzinfo=UTC)),  # EST
        ("2013-07-01T12:00+00:00", 8, 1, datetime(2013, 7, 1, 10, 0, tzinfo=UTC)),
        ("2013-03-10T02:30", 3, 7, datetime(2013, 3, 10, 5, 30, tzinfo=UTC)),  # skipped hour
        ("2013-11-03T01:30", 1, 7, datetime(2013, 11, 3, 3, 30, tzinfo=UTC)),  # first 01:30
    ],
)
def test_derived_fields_and_prediction_time(
    when: str, hour: int, weekday: int, predicted: datetime
) -> None:
    assert inputs.derived(when) == {"dep_hour": hour, "day_of_week": weekday}
    assert inputs.prediction_time(when) == predicted


def test_the_frame_form_agrees_with_the_request_form() -> None:
    whens = ["2013-07-01T08:00", "2013-03-10T02:30", "2013-11-03T01:30"]
    frame = inputs.entity_frame(pd.DataFrame({"sched_dep_at": pd.to_datetime(whens)}))
    for when, (_, row) in zip(whens, frame.iterrows(), strict=True):
        assert row.dep_hour == inputs.derived(when)["dep_hour"]
        assert row.day_of_week == inputs.derived(when)["day_of_week"]
        assert row[inputs.EVENT_TIMESTAMP] == inputs.prediction_time(when)


def test_a_request_is_validated_field_by_field() -> None:
    request = inputs.parse_request(
        {"carrier": " ua", "origin": "jfk", "dest": "LAX", "sched_dep_at": "2013-07-01T08:00"}
    )
    assert (request.carrier, request.origin) == ("UA", "JFK")
    assert request.entity_row()[inputs.EVENT_TIMESTAMP] == datetime(2013, 7, 1, 10, tzinfo=UTC)
    good = {"carrier": "UA", "origin": "JFK", "dest": "LAX", "sched_dep_at": "2013-07-01T08:00"}
    for field, value, message in [
        ("carrier", None, "required"),
        ("origin", "J F K", "is not a carrier or airport code"),
        ("dest", 7, "expected a string code such as 'JFK', got 7"),
        ("dest", " ", "required: a non-empty code"),
        ("sched_dep_at", "tomorrow", "is not an ISO 8601 date-time"),
        ("sched_dep_at", None, "required"),
        # Outside datetime's range once converted: was an OverflowError, a 500 (review).
        ("sched_dep_at", "0001-01-01T00:00+14:00", "year 1 is outside 1900-2100"),
        ("sched_dep_at", "9999-12-31T23:00-12:00", "year 9999 is outside 1900-2100"),
    ]:
        with pytest.raises(inputs.ModelInputError, match=message) as err:
            inputs.parse_request(good | {field: value})
        assert err.value.field == field


def test_model_frame_fills_nulls_and_names_what_is_missing() -> None:
    frame = inputs.entity_frame(
        pd.DataFrame(
            {
                "carrier": ["UA", "AA"],
                "origin": ["JFK", "EWR"],
                "dest": ["LAX", "ORD"],
                "sched_dep_at": pd.to_datetime(["2013-07-01 08:00", "2013-07-01 09:00"]),
            }
        )
    )
    for column in inputs.feature_columns():
        frame[column] = [1.0, None]
    fills = inputs.fill_values(frame)
    assert fills["weather_temp"] == 1.0 and fills["dep_hour"] == 8.5
    filled = inputs.model_frame(frame, fills)
    assert list(filled.columns) == list(inputs.model_columns())
    assert filled.isna().sum().sum() == 0 and filled.loc[1, "weather_temp"] == 1.0
    with pytest.raises(ConfigError, match="no fill value for: weather_visib"):
        inputs.model_frame(frame, {k: v for k, v in fills.items() if k != "weather_visib"})
    with pytest.raises(ConfigError, match="lacks model input columns: weather_temp"):
        inputs.model_frame(frame.drop(columns=["weather_temp"]), fills)
