"""The BentoML service: late-arrival predictions from the champion's ONNX form.

Run by `onering serve` (``bentoml serve`` on this folder, bound to 127.0.0.1). The logic
lives in ``onering_assets.ml.serving``; this file only maps HTTP to it:

- ``POST /predict`` ``{carrier, origin, dest, sched_dep_at}`` ->
  ``{probability, late, model_version, fallbacks}``
- ``POST /predict_batch`` ``{"flights": [{…}, …]}`` -> ``{model_version, predictions}``

An invalid request gets HTTP 400 ``{"error": "<field>: <what is wrong>", "field"[, "row"]}``;
a body over 4 MiB gets HTTP 413 before it is parsed.
The settings (state folder, profile) come from the ``ONERING_*`` environment at start. The
alias ``champion`` is checked every ``$ONERING_SERVE_RELOAD_S`` seconds (default 30; 0:
never) and a moved one is served from then on; a version the gate did not pass is refused.

The methods return Starlette responses: for a ``dict`` return type BentoML 1.4 rebuilds the
output's JSON schema on every response (0.6 ms of CPU per request here, measured);
``output_spec`` still documents the answers in the OpenAPI page.
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from pydantic import Field
from starlette.responses import JSONResponse

from onering_assets.errors import OneRingError
from onering_assets.ml import serving_schema as schema
from onering_assets.ml.serving_app import (
    SERVICE_CONFIG,
    BodyLimit,
    NoTracking,
    Served,
    answer,
    cannot_serve,
    open_predictor,
    reload_interval,
)
from onering_assets.settings import Settings

# Typed Any so that the predictor, not pydantic, validates them: every invalid field gets
# the same one-line error naming it.
Code = Annotated[Any, Field(description="Carrier or airport code, e.g. 'UA', 'EWR'.")]
Departure = Annotated[
    Any, Field(description="Scheduled departure, ISO 8601, New York time if naive.")
]
Flights = Annotated[Any, Field(description="A list of {carrier, origin, dest, sched_dep_at}.")]


class Prediction(bentoml.IODescriptor, schema.Prediction):
    """One flight's answer (documents ``/predict`` in the OpenAPI page)."""


class BatchPrediction(bentoml.IODescriptor, schema.BatchPrediction):
    """Many flights' answers (documents ``/predict_batch``)."""


@bentoml.service(name="flight_late_arrival", **SERVICE_CONFIG)
class FlightLateArrival:
    """Will this flight arrive more than 15 minutes late? Asked two hours before departure."""

    def __init__(self) -> None:
        try:
            settings = Settings.from_env()
            self.served = Served(settings, open_predictor(settings))
            if interval := reload_interval():
                self.served.watch(interval)  # a moved alias is served within the interval
        except OneRingError as err:  # no champion, no features: say so once and stop
            cannot_serve(err)
        except Exception as err:  # a corrupt registry or online store: the same, never a loop
            cannot_serve(OneRingError(f"the predictor could not open: {type(err).__name__}: {err}"))

    @bentoml.api(route="/predict", output_spec=Prediction)
    async def predict(
        self,
        carrier: Code = None,
        origin: Code = None,
        dest: Code = None,
        sched_dep_at: Departure = None,
    ) -> JSONResponse:
        """One flight's probability of arriving more than 15 minutes late."""
        flight = {"carrier": carrier, "origin": origin, "dest": dest, "sched_dep_at": sched_dep_at}
        status, body = answer(self.served.predictor.predict_one, flight)
        return JSONResponse(body, status_code=status)

    # Not async: BentoML runs it in a thread, so a large batch never holds up /predict.
    @bentoml.api(route="/predict_batch", output_spec=BatchPrediction)
    def predict_batch(self, flights: Flights = None) -> JSONResponse:
        """Many flights at once; one invalid flight refuses the batch, naming its row."""
        predictor = self.served.predictor  # one model for the whole batch
        status, body = answer(predictor.predict_batch, flights)
        if status == 200:
            body = {"model_version": predictor.version, "predictions": body}
        return JSONResponse(body, status_code=status)


FlightLateArrival.add_asgi_middleware(BodyLimit)  # type: ignore[attr-defined]
FlightLateArrival.add_asgi_middleware(NoTracking)  # type: ignore[attr-defined]
