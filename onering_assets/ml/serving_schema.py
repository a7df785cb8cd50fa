"""The HTTP answers of the prediction service, as pydantic models (its OpenAPI schema).

The predictor builds plain dicts (no validation per request); these models document them
in the service's OpenAPI page, and the tests check real answers against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FallbackKind = Literal["unseen_category", "no_online_row", "null_feature"]


class Fallback(BaseModel):
    """Something the service did not know, and what it used instead."""

    kind: FallbackKind = Field(
        description="unseen_category: a code not in the training data (read as unseen); "
        "no_online_row: no online features for the entity (fill values used); "
        "null_feature: some online features null (fill values used)."
    )
    subject: str = Field(description="The request field or feature view concerned.")
    message: str = Field(description="What happened, in one sentence.")
    filled: dict[str, float] | None = Field(
        default=None, description="The features filled, with the value used."
    )


class Prediction(BaseModel):
    """One flight's answer."""

    probability: float = Field(description="P(arrival more than 15 minutes late).")
    late: bool = Field(description="probability >= the model's threshold (0.5).")
    model_version: str = Field(description="The registered version of flight_late_arrival.")
    fallbacks: list[Fallback] = Field(description="Empty when every input was known.")


class BatchPrediction(BaseModel):
    """Many flights' answers, in the order asked."""

    model_version: str
    predictions: list[Prediction]


class RequestErrorBody(BaseModel):
    """HTTP 400: which field of which flight is wrong."""

    error: str = Field(description="'<field>: <what is wrong>' ('flights[i].<field>' in a batch).")
    field: str
    row: int | None = None
