"""The bare endpoint ``bench/ml.py`` measures BentoML against: Starlette on uvicorn.

``python -m bench.ml_floor PORT`` serves the same two routes as the BentoML service with
the same predictor (:func:`onering_assets.ml.serving_app.open_predictor`) and the same
answers, on 127.0.0.1, one process, no access log: what a lookup plus a prediction costs
over HTTP with nothing else in the way.
"""

from __future__ import annotations

import json
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from onering_assets.ml.serving_app import answer, open_predictor
from onering_assets.settings import Settings


def app() -> Starlette:
    predictor = open_predictor(Settings.from_env())

    async def body(request: Request) -> object:
        try:
            return json.loads(await request.body())
        except ValueError:
            return None

    async def predict(request: Request) -> Response:
        status, result = answer(predictor.predict_one, await body(request))
        return JSONResponse(result, status_code=status)

    async def predict_batch(request: Request) -> Response:
        data = await body(request)
        flights = data.get("flights") if isinstance(data, dict) else None
        status, result = answer(predictor.predict_batch, flights)
        if status == 200:
            result = {"model_version": predictor.version, "predictions": result}
        return JSONResponse(result, status_code=status)

    async def ready(_: Request) -> Response:
        return Response("\n")

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/predict_batch", predict_batch, methods=["POST"]),
            Route("/readyz", ready),
        ]
    )


def main(argv: list[str]) -> None:
    import uvicorn

    uvicorn.run(app(), host="127.0.0.1", port=int(argv[0]), access_log=False, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
