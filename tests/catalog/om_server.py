"""A loopback HTTP server speaking the slice of OpenMetadata 2.0.7's REST API OneRing publishes to.

No OpenMetadata server can run on these machines (it ships only as container images and release
archives), so tests talk to this instead: a real HTTP server on 127.0.0.1 that answers as
OpenMetadata does (ids, versions, FQNs, 401/404/409 bodies) and rejects what OpenMetadata would
reject, checking each body against OpenMetadata's own JSON schemas (``om_spec/``) and references.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.catalog.om_api import EntityApi, Reply
from tests.catalog.om_graph import Graph
from tests.catalog.om_model import KIND_BY_TYPE, ApiError
from tests.catalog.om_routes import dispatch
from tests.catalog.om_seed import seed_test_definitions
from tests.catalog.om_store import Json, Store

SERVER_VERSION = "2.0.7"
BOT = "ingestion-bot"


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it, and the status it answered."""

    method: str
    path: str  # decoded, from /v1 on (e.g. "/v1/tables/name/a.b.c.t")
    query: dict[str, str]
    body: Any  # parsed JSON, the raw text when it was not JSON, or None
    status: int


@dataclass
class _Rule:
    status: int
    count: int
    prefix: str | None
    delay: float = 0.0


def make_token(subject: str = BOT) -> str:
    """A JWT-shaped bearer token (HS256 over a random key), like an OpenMetadata bot's."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "sub": subject,
        "iss": "open-metadata.org",
        "isBot": True,
        "exp": int(time.time()) + 86400,
    }
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secrets.token_bytes(32), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{b64(signature.digest())}"


class OMServer:
    """The server, its state and its request log; :meth:`start` it, :meth:`stop` it."""

    def __init__(self, users: tuple[str, ...] = (), teams: tuple[str, ...] = ()) -> None:
        self.token = make_token()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.state = Store(self.url, BOT)
        self.entities = EntityApi(self.state)
        self.graph = Graph(self.state)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        for name in users:
            self.add_principal("user", name)
        for name in teams:
            self.add_principal("team", name)
        seed_test_definitions(self.state)

    def start(self) -> OMServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._http.shutdown()
        self._http.server_close()

    # Test helpers --------------------------------------------------------------------------

    def add_principal(self, entity_type: str, name: str) -> Json:
        """Seed a user or team (OpenMetadata's publisher only looks them up)."""
        spec: Json = {"name": name}
        if entity_type == "user":
            spec["email"] = f"{name}@example.com"
        _, entity = self.state.upsert(KIND_BY_TYPE[entity_type], name, spec, {})
        return self.state.reference(entity)

    def writes(self) -> list[Recorded]:
        """The recorded non-GET requests, in order."""
        return [r for r in self.requests if r.method != "GET"]

    def reset_log(self) -> None:
        """Forget the recorded requests (the state stays)."""
        with self._lock:
            self.requests.clear()

    def entity(self, entity_type: str, fqn: str, fields: str = "") -> Json | None:
        """An entity's JSON by type and FQN with every field (or ``fields``), or None."""
        found = self.state.find(entity_type, fqn)
        if found is None:
            return None
        names = frozenset(fields.split(",")) if fields else found.kind.fields
        return self.state.render(found, names)

    def edges(self) -> dict[tuple[str, str], Json | None]:
        """Lineage edges as ``{(from FQN, to FQN): lineageDetails}`` (None: drawn by the server)."""
        by_id = self.state.by_id
        return {(by_id[a].fqn, by_id[b].fqn): d for (a, b), d in self.graph.edges.items()}

    def fail_next(self, status: int, count: int = 1, path_prefix: str | None = None) -> None:
        """Answer the next ``count`` requests (under ``/v1<path_prefix>``) with ``status``."""
        with self._lock:
            self._rules.append(_Rule(status, count, path_prefix))

    def delay_next(self, seconds: float, count: int = 1, path_prefix: str | None = None) -> None:
        """Hold the next ``count`` answers (under ``/v1<path_prefix>``) for ``seconds``."""
        with self._lock:
            self._rules.append(_Rule(0, count, path_prefix, seconds))

    # Request handling ----------------------------------------------------------------------

    def answer(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Route, authenticate, validate and answer one request; record it."""
        split = urlsplit(raw_path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        segments = [unquote(s) for s in split.path.split("/") if s]
        body: Any = None
        if raw:
            text = raw.decode("utf-8", "replace")
            try:
                body = json.loads(text)
            except json.JSONDecodeError:
                body = text
        path = "/" + "/".join(segments[1:]) if segments[:1] == ["api"] else split.path
        delay, reply = 0.0, None
        with self._lock:
            rule = self._take_rule(path)
            if rule is not None and rule.delay:
                delay = rule.delay
            elif rule is not None:
                reply = (rule.status, {"code": rule.status, "message": "Injected failure"})
        if delay:
            time.sleep(delay)
        logged = copy.deepcopy(body)  # the stores may change the body they are given
        with self._lock:
            if reply is None:
                try:
                    reply = self._route(method, segments, query, headers, body)
                except ApiError as err:
                    reply = (err.status, err.body())
            self.requests.append(Recorded(method, path, query, logged, reply[0]))
        return reply

    def _take_rule(self, path: str) -> _Rule | None:
        for rule in self._rules:
            if rule.count > 0 and (rule.prefix is None or path.startswith("/v1" + rule.prefix)):
                rule.count -= 1
                return rule
        return None

    def _route(
        self,
        method: str,
        segments: list[str],
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
    ) -> Reply:
        if segments[:2] != ["api", "v1"]:
            raise ApiError(404, "HTTP 404 Not Found")
        rest = segments[2:]
        if rest == ["system", "version"] and method == "GET":
            # JwtFilter lets the version endpoint through without a token.
            return 200, {"version": SERVER_VERSION, "revision": "loopback", "timestamp": 0}
        auth = headers.get("authorization", "")
        if not auth:
            raise ApiError(401, "Not Authorized! Token not present")
        if auth != f"Bearer {self.token}":
            raise ApiError(401, "Not Authorized! Invalid token")
        if method == "PATCH" and "json-patch+json" not in headers.get("content-type", ""):
            raise ApiError(415, "HTTP 415 Unsupported Media Type")
        return dispatch(self.entities, self.graph, method, rest, query, body)


def _handler(server: OMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add about 40 ms to every answer.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = server.answer(self.command, self.path, headers, raw)
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the request log is ``server.requests``."""

    return Handler
