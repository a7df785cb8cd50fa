"""The Infisical endpoints ``infisicalsdk`` 1.0 calls, served from a thread on 127.0.0.1.

``POST /api/v1/auth/universal-auth/login`` issues an access token for the one machine
identity it knows (401 otherwise); ``/api/v3/secrets/raw`` lists and
``/api/v3/secrets/raw/{name}`` gets, creates, updates and deletes ``shared`` secrets of one
project, by environment slug and folder path, answering 401 without that bearer token,
404 for an unknown project, environment or secret and 400 when creating one that exists, as
Infisical does (``{"statusCode", "message", "error"}`` bodies).
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LOGIN = "/api/v1/auth/universal-auth/login"
SECRETS = "/api/v3/secrets/raw"


@dataclass
class InfisicalState:
    """One organization with one machine identity and one project."""

    client_id: str
    client_secret: str
    project_id: str
    environments: tuple[str, ...] = ("dev", "staging", "prod")
    # (environment, path) -> name -> the secret as the API returns it
    secrets: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, environment: str, path: str, name: str, value: str, comment: str = "") -> None:
        """Store (or overwrite) a secret, as a user would in Infisical's UI."""
        folder = self.secrets.setdefault((environment, path), {})
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        old = folder.get(name)
        ident = old["id"] if old else str(uuid.uuid4())
        folder[name] = {
            "id": ident,
            "_id": ident,
            "workspace": self.project_id,
            "environment": environment,
            "version": old["version"] + 1 if old else 1,
            "type": "shared",
            "secretKey": name,
            "secretValue": value,
            "secretComment": comment,
            "secretReminderNote": None,
            "secretReminderRepeatDays": None,
            "skipMultilineEncoding": False,
            "secretValueHidden": False,
            "createdAt": old["createdAt"] if old else now,
            "updatedAt": now,
            "secretPath": path,
            "tags": [],
            "secretMetadata": [],
        }

    def values(self, environment: str, path: str = "/") -> dict[str, str]:
        return {k: s["secretValue"] for k, s in self.secrets.get((environment, path), {}).items()}


def _error(status: int, message: str) -> dict[str, Any]:
    names = {400: "BadRequest", 401: "UnauthorizedError", 403: "PermissionDenied"}
    return {
        "reqId": f"req-{uuid.uuid4().hex[:12]}",
        "statusCode": status,
        "message": message,
        "error": names.get(status, "NotFound"),
    }


class _Handler(BaseHTTPRequestHandler):
    state: InfisicalState  # set on the subclass each server makes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._body() if method in ("POST", "PATCH", "DELETE") else {}
        state = self.state
        with state.lock:
            state.requests.append(
                {
                    "method": method,
                    "path": url.path,
                    "query": query,
                    "body": body,
                    "authorization": self.headers.get("Authorization"),
                }
            )
            status, answer = self._route(method, url.path, query, body)
        self._send(status, answer)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if path == LOGIN and method == "POST":
            return self._login(body)
        if not path.startswith(SECRETS):
            return 404, _error(404, f"Route {method}:{path} not found")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.state.tokens:
            return 401, _error(401, "Invalid token")
        where = {**query, **body}
        project = where.get("workspaceId")
        if project != self.state.project_id:
            return 404, _error(404, f"Project with ID '{project}' not found")
        environment = where.get("environment", "")
        if environment not in self.state.environments:
            return 404, _error(404, f"Environment with slug '{environment}' not found")
        scope = (environment, where.get("secretPath") or "/")
        name = unquote(path[len(SECRETS) + 1 :]) if path != SECRETS else ""
        if not name:
            if method != "GET":
                return 404, _error(404, f"Route {method}:{path} not found")
            return 200, {"secrets": list(self.state.secrets.get(scope, {}).values()), "imports": []}
        return self._one(method, scope, name, body)

    def _login(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        state = self.state
        if (body.get("clientId"), body.get("clientSecret")) != (
            state.client_id,
            state.client_secret,
        ):
            return 401, _error(401, "Invalid credentials")
        token = secrets.token_urlsafe(32)
        state.tokens.add(token)
        return 200, {
            "accessToken": token,
            "expiresIn": 7200,
            "accessTokenMaxTTL": 2592000,
            "tokenType": "Bearer",
        }

    def _one(
        self, method: str, scope: tuple[str, str], name: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        folder = self.state.secrets.get(scope, {})
        if method == "POST":
            if name in folder:
                return 400, _error(400, "Secret already exist")
            self.state.put(
                *scope, name, body.get("secretValue", ""), body.get("secretComment") or ""
            )
            return 200, {"secret": self.state.secrets[scope][name]}
        if name not in folder:
            return 404, _error(404, f"Secret with name '{name}' not found")
        if method == "PATCH":
            value = body.get("secretValue", folder[name]["secretValue"])
            comment = body.get("secretComment", folder[name]["secretComment"])
            self.state.put(*scope, name, value, comment or "")
        elif method == "DELETE":
            return 200, {"secret": folder.pop(name)}
        return 200, {"secret": folder[name]}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


@dataclass
class InfisicalServer:
    url: str
    state: InfisicalState

    def env(self, environment: str = "dev", path: str = "/") -> dict[str, str]:
        """The ``INFISICAL_*`` settings that reach this server as its machine identity."""
        return {
            "INFISICAL_URL": self.url,
            "INFISICAL_CLIENT_ID": self.state.client_id,
            "INFISICAL_CLIENT_SECRET": self.state.client_secret,
            "INFISICAL_PROJECT_ID": self.state.project_id,
            "INFISICAL_ENVIRONMENT": environment,
            "INFISICAL_SECRET_PATH": path,
        }


@contextmanager
def serve(state: InfisicalState | None = None) -> Iterator[InfisicalServer]:
    """The API on a free loopback port until the block ends."""
    state = state or InfisicalState(
        client_id=str(uuid.uuid4()),
        client_secret=f"ua-client-secret-{secrets.token_hex(16)}",
        project_id=str(uuid.uuid4()),
    )
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield InfisicalServer(url=f"http://{host}:{port}", state=state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
