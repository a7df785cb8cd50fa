"""What an HTTP front end of :class:`~onering_assets.ml.serving.Predictor` shares.

The BentoML service and ``bench/ml.py``'s bare Starlette endpoint both open the predictor
with :func:`open_predictor` (the champion from the registry, features from the profile's
online store) and answer with :func:`answer`, so they differ only in their framework.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from onering_assets.errors import ConfigError, OneRingError
from onering_assets.ml.serving import Predictor, RequestError
from onering_assets.ml.serving_model import load_champion, registry_for
from onering_assets.settings import Settings

BAD_REQUEST = 400
EXIT_CANNOT_SERVE = 3
ERROR_FILE_ENV = "ONERING_SERVE_ERROR_FILE"
RELOAD_ENV = "ONERING_SERVE_RELOAD_S"
TOO_LARGE = 413
# A full batch (10,000 flights) is about 0.9 MB of JSON.
MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_RELOAD_S = 30.0
logger = logging.getLogger("onering.serving")
ROUTES = ("/predict", "/predict_batch")
# The BentoML service's configuration (``@bentoml.service(**SERVICE_CONFIG)``). BentoML's
# defaults add an OpenTelemetry span per request (made even with no exporter), an access-log
# line and Prometheus metrics: in one `python -m bench.ml` run (server CPU per single
# request, 2 busy cores) bare Starlette doing the same work took 0.80 ms, this service 1.05
# ms, the same with BentoML's defaults back on 1.55 ms (p50 0.95 / 1.19 / 1.69 ms). Turn
# them on with BENTOML_CONFIG_OPTIONS, e.g. ``services.flight_late_arrival.metrics.enabled=
# true``. One worker: a request takes about a millisecond of CPU, and a second worker would
# share the same 2 cores.
SERVICE_CONFIG: dict[str, Any] = {
    "workers": 1,
    "traffic": {"timeout": 30},
    "logging": {"access": {"enabled": False}},
    "metrics": {"enabled": False},
    "tracing": {"excluded_urls": list(ROUTES)},
}


def open_predictor(settings: Settings) -> Predictor:
    """The champion of the profile's registry over the profile's online store.

    Raises:
        NoChampionError: nothing to serve yet (the message says what to run).
        ConfigError: the champion's serving form is unusable, or the store misconfigured.
    """
    from onering_assets.ml.serving_features import online_lookup

    champion = load_champion(registry_for(settings))
    return Predictor(champion, online_lookup(settings, champion.spec.feature_refs))


class Served:
    """The predictor being served, replaced when the alias ``champion`` moves.

    :meth:`watch` checks the alias every ``interval_s`` seconds (one registry query) in a
    daemon thread; a new champion is opened beside the old one and swapped in by one
    assignment, so a request is answered by one model or the other, never a mix. A champion
    that cannot be opened (not passed by the gate, unreadable) is logged and the old one is
    kept.
    """

    def __init__(self, settings: Settings, predictor: Predictor) -> None:
        self.settings, self.predictor = settings, predictor
        self.refused = ""  # the last version that could not be opened: not tried again

    def refresh(self) -> str:
        """Swap in the champion if the alias moved; what happened, for the log ("" if not)."""
        from onering_assets.ml.serving_model import champion_version

        now = champion_version(registry_for(self.settings))
        if now in (self.predictor.version, self.refused):
            return ""
        try:
            self.predictor = open_predictor(self.settings)
        except OneRingError as err:
            self.refused = now
            return f"keeping version {self.predictor.version}: {err}"
        self.refused = ""
        return f"now serving version {self.predictor.version} (the alias moved)"

    def watch(self, interval_s: float) -> threading.Thread:
        def loop() -> None:
            while True:
                time.sleep(interval_s)
                try:
                    if said := self.refresh():
                        logger.warning(said)
                except Exception as err:  # a registry that cannot be reached now: next time
                    logger.error("cannot check the champion: %s: %s", type(err).__name__, err)

        thread = threading.Thread(target=loop, name="champion-watch", daemon=True)
        thread.start()
        return thread


def reload_interval(env: Mapping[str, str] | None = None) -> float:
    """``$ONERING_SERVE_RELOAD_S`` (default 30 s; 0 turns reloading off).

    Raises:
        ConfigError: not a number ≥ 0.
    """
    text = (os.environ if env is None else env).get(RELOAD_ENV, str(DEFAULT_RELOAD_S))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{RELOAD_ENV}={text!r}: expected seconds ≥ 0 (0: never reload).")
    return value


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets HTTP 413 before it is parsed.

    A declared ``Content-Length`` over the limit is refused without reading the body (the
    server holds a body to its declared length); a body without one (chunked) is read here
    up to the limit, then handed on whole, or refused once it passes the limit.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(send, int(declared))
                return
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._refuse(send, len(body))
                return
        replayed = False

        async def whole() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, whole, send)

    async def _refuse(self, send: Any, size: int) -> None:
        body = json.dumps(
            {
                "error": f"body: {size} bytes; at most {self.max_bytes} a request",
                "field": "body",
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": TOO_LARGE, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# BentoML's index page loads Google Tag Manager (a third-party tracker, and a request to
# the internet from a local service); the blocks are marked by these comments.
TRACKER = re.compile(rb"<!-- Google Tag Manager.*?<!-- End Google Tag Manager[^>]*-->", re.S)


class NoTracking:
    """ASGI middleware: the index page (``GET``/``HEAD /``) without BentoML's tracker.

    The page is always fetched whole (a ``Range`` header is dropped) and its length set
    after the tracker is cut; a ``HEAD`` gets the same headers and no body.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        method = scope.get("method")
        if scope["type"] != "http" or scope.get("path") != "/" or method not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        whole = {
            **scope,
            "method": "GET",
            "headers": [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"range"],
        }
        start: dict[str, Any] = {}
        body = b""

        async def held(message: Any) -> None:
            nonlocal body
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            page = TRACKER.sub(b"", body)
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", b"%d" % len(page)))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else page})

        await self.app(whole, receive, held)


def answer(call: Callable[[Any], Any], payload: Any) -> tuple[int, Any]:
    """``(200, result)``, or ``(400, {"error", "field"[, "row"]})`` for an invalid request."""
    try:
        return 200, call(payload)
    except RequestError as err:
        return BAD_REQUEST, err.to_json()


def cannot_serve(error: OneRingError) -> NoReturn:
    """Log why the service cannot start, stop the whole server, and exit.

    BentoML's process manager (circus) restarts a worker that fails at start, forever: a
    missing champion or feature store would loop, each try paying seconds of imports. So a
    worker that cannot open its predictor stops its manager too (SIGTERM, a graceful stop)
    and leaves at once (no traceback). The message also goes to ``$ONERING_SERVE_ERROR_FILE``
    when set, for `onering serve` to print.
    """
    logger.error("cannot serve: %s", error)
    if path := os.environ.get(ERROR_FILE_ENV):
        Path(path).write_text(str(error))
    if "_bentoml_impl" in sys.argv[0]:  # a BentoML worker: its parent is the manager
        os.kill(os.getppid(), signal.SIGTERM)
    for handler in logging.getLogger().handlers + logger.handlers:
        handler.flush()
    os._exit(EXIT_CANNOT_SERVE)
