"""The endpoints of Airbyte's public API (``/api/public/v1``) and Configuration API
(``/api/v1``) that OneRing calls, on 127.0.0.1, with Airbyte's semantics.

What it refuses, as Airbyte does: a request without a valid bearer token (401), bad client
credentials at the token endpoint (401), a body that does not match the published model
(400, e.g. a string where the spec wants an integer), an unknown ``sourceType``, a
definition the workspace does not have, a configuration of another connector than its
definition, an unknown workspace, source, destination, connection or job (404), a stream the
source's catalog does not have (400), a second sync while one runs (409). Secrets come back
masked (``**********``). A job runs until it is first polled, then succeeds with each
stream's records (source-faker: ``count`` users and 10 products; source-file: the CSV's rows)
or fails with ``fail_next_job``'s reason, as a connector error would.

What it cannot prove: that a real connector, worker or destination behaves as modelled here.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.airbyte_api.models import (
    CONFIG,
    PUBLIC,
    SCHEMAS,
    ApiError,
    catalog,
    masked,
    records,
    validate,
)


class AirbyteApi:
    """One workspace's state, the requests seen, and the server thread."""

    def __init__(self, client_id: str, client_secret: str, sources: tuple[str, ...]) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.workspace_id = str(uuid.uuid4())
        self.definitions = {
            "source": {f"airbyte/{c}": str(uuid.uuid4()) for c in sources},
            "destination": {"airbyte/destination-s3": str(uuid.uuid4())},
        }
        self.actors: dict[str, dict[str, dict[str, Any]]] = {"source": {}, "destination": {}}
        self.connections: dict[str, dict[str, Any]] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []  # responses that broke the published models
        self.fail_next_job: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""  # set by start()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = api.handle(self.command, self.path, self.headers, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                kind = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815 (http.server's names)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def writes(self) -> list[tuple[str, str]]:
        """The requests that created or changed a source, destination or connection."""
        kinds = ("/sources", "/destinations", "/connections")
        return [(m, p) for m, p in self.requests if m in ("POST", "PATCH") and p.startswith(kinds)]

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Any, raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return 400, {"status": 400, "detail": "the body is not JSON"}
        with self._lock:
            try:
                if parts.path.startswith(PUBLIC):
                    path = parts.path.removeprefix(PUBLIC)
                    self.requests.append((method, path))
                    if path != "/applications/token":
                        self._authorized(headers)
                    return 200, self._public(method, path, query, body)
                if parts.path.startswith(CONFIG):
                    self._authorized(headers)
                    path = parts.path.removeprefix(CONFIG)
                    self.requests.append((method, f"config:{path}"))
                    return 200, self._config(method, path, body)
                raise ApiError(404, f"no route {parts.path}")
            except ApiError as err:
                return err.status, {"status": err.status, "title": "error", "detail": err.detail}

    def _authorized(self, headers: Any) -> None:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.tokens:
            raise ApiError(401, "Unauthorized: a valid bearer token is required")

    def _public(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        seg = path.strip("/").split("/")
        route = (method, seg[0], len(seg))
        if route == ("POST", "applications", 2):
            return self._token(body)
        if seg[0] == "workspaces":
            return self._workspaces(seg)
        if seg[0] in ("sources", "destinations"):
            return self._actors(method, seg, query, body)
        if seg[0] == "connections":
            return self._connections(method, seg, query, body)
        if seg[0] == "jobs":
            return self._jobs(method, seg, query, body)
        raise ApiError(404, f"no route {method} {path}")

    def _actors(self, method: str, seg: list[str], query: dict[str, str], body: Any) -> Any:
        kind = seg[0][:-1]
        if len(seg) == 1 and method == "GET":
            return self._page([self._actor_out(kind, a) for a in self._listed(kind, query)], query)
        if len(seg) == 1 and method == "POST":
            return self._actor_out(kind, self._create_actor(kind, body))
        if len(seg) == 2 and method == "PATCH":
            return self._actor_out(kind, self._patch_actor(kind, seg[1], body))
        raise ApiError(404, f"no route {method} /{'/'.join(seg)}")

    def _connections(self, method: str, seg: list[str], query: dict[str, str], body: Any) -> Any:
        if len(seg) == 1 and method == "GET":
            wanted = [c for c in self.connections.values() if self._in(c, query)]
            return self._page([self._out("ConnectionResponse", c) for c in wanted], query)
        if len(seg) == 1 and method == "POST":
            return self._out("ConnectionResponse", self._create_connection(body))
        if len(seg) == 2 and method == "PATCH":
            return self._out("ConnectionResponse", self._patch_connection(seg[1], body))
        raise ApiError(404, f"no route {method} /{'/'.join(seg)}")

    # -- resources -------------------------------------------------------------------------
    def _token(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("client_id", "client_secret")
        ):
            raise ApiError(400, "client_id and client_secret are required strings")
        if (body["client_id"], body["client_secret"]) != (self.client_id, self.client_secret):
            raise ApiError(401, "Invalid client credentials")
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": 180}

    def _workspaces(self, seg: list[str]) -> Any:
        workspace = {
            "workspaceId": self.workspace_id,
            "name": "Default Workspace",
            "dataResidency": "auto",
            "notifications": {},
        }
        if len(seg) == 1:
            return {"data": [self._out("WorkspaceResponse", workspace)]}
        if seg[1] != self.workspace_id:
            raise ApiError(404, f"workspace {seg[1]} not found")
        if len(seg) == 2:
            return self._out("WorkspaceResponse", workspace)
        kind = seg[3][:-1]
        data = [
            {"id": i, "name": r.split("-", 1)[1], "dockerRepository": r, "dockerImageTag": "1.0"}
            for r, i in self.definitions[kind].items()
        ]
        return {"data": [self._out("DefinitionResponse", d) for d in data]}

    def _listed(self, kind: str, query: dict[str, str]) -> list[dict[str, Any]]:
        return [a for a in self.actors[kind].values() if self._in(a, query)]

    def _in(self, item: dict[str, Any], query: dict[str, str]) -> bool:
        wanted = query.get("workspaceIds")
        return not wanted or item["workspaceId"] in wanted.split(",")

    def _check_config(self, kind: str, definition_id: str, config: Any) -> None:
        key = f"{kind}Type"
        known = SCHEMAS["knownTypes"][key]
        given = config.get(key) if isinstance(config, dict) else None
        if given not in known:
            raise ApiError(400, f"configuration.{key}: unknown {kind} type {given!r}")
        image = next((r for r, i in self.definitions[kind].items() if i == definition_id), None)
        if image is None:
            raise ApiError(404, f"{kind} definition {definition_id} not found in the workspace")
        if image != f"airbyte/{kind}-{given}":
            raise ApiError(400, f"configuration.{key} {given!r} is not the definition's {image}")

    def _create_actor(self, kind: str, body: Any) -> dict[str, Any]:
        model = "SourceCreateRequest" if kind == "source" else "DestinationCreateRequest"
        if isinstance(body, dict):
            self._check_config(kind, str(body.get("definitionId")), body.get("configuration"))
        validate(model, body)
        if body["workspaceId"] != self.workspace_id:
            raise ApiError(404, f"workspace {body['workspaceId']} not found")
        actor = {
            f"{kind}Id": str(uuid.uuid4()),
            "name": body["name"],
            "workspaceId": body["workspaceId"],
            "definitionId": body["definitionId"],
            f"{kind}Type": body["configuration"][f"{kind}Type"],
            "configuration": body["configuration"],
            "createdAt": int(time.time()),
        }
        self.actors[kind][actor[f"{kind}Id"]] = actor
        return actor

    def _patch_actor(self, kind: str, actor_id: str, body: Any) -> dict[str, Any]:
        actor = self.actors[kind].get(actor_id)
        if actor is None:
            raise ApiError(404, f"{kind} {actor_id} not found")
        if isinstance(body, dict) and "configuration" in body:
            self._check_config(kind, actor["definitionId"], body["configuration"])
        validate("SourcePatchRequest" if kind == "source" else "DestinationPatchRequest", body)
        actor.update({k: body[k] for k in ("name", "configuration") if k in body})
        return actor

    def _actor_out(self, kind: str, actor: dict[str, Any]) -> Any:
        shown = {**actor, "configuration": masked(actor["configuration"])}
        return self._out("SourceResponse" if kind == "source" else "DestinationResponse", shown)

    def _streams(self, source: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
        names = catalog(source["sourceType"], source["configuration"])
        streams = body.get("configurations", {}).get("streams", [])
        unknown = [s["name"] for s in streams if s["name"] not in names]
        if unknown:
            raise ApiError(400, f"Invalid stream found: {unknown} (catalog: {names})")
        return [
            {"name": s["name"], "syncMode": s.get("syncMode", "full_refresh_append")}
            for s in streams
        ]

    def _create_connection(self, body: Any) -> dict[str, Any]:
        validate("ConnectionCreateRequest", body)
        source = self.actors["source"].get(body["sourceId"])
        if source is None or body["destinationId"] not in self.actors["destination"]:
            raise ApiError(404, "source or destination not found")
        connection = {
            "connectionId": str(uuid.uuid4()),
            "name": body.get("name", "connection"),
            "sourceId": body["sourceId"],
            "destinationId": body["destinationId"],
            "workspaceId": source["workspaceId"],
            "status": body.get("status", "active"),
            "schedule": body.get("schedule", {"scheduleType": "manual"}),
            "configurations": {"streams": self._streams(source, body)},
            "prefix": body.get("prefix", ""),
            "namespaceDefinition": body.get("namespaceDefinition", "destination"),
            "nonBreakingSchemaUpdatesBehavior": body.get(
                "nonBreakingSchemaUpdatesBehavior", "ignore"
            ),
            "createdAt": int(time.time()),
            "tags": [],
        }
        self.connections[connection["connectionId"]] = connection
        return connection

    def _patch_connection(self, connection_id: str, body: Any) -> dict[str, Any]:
        connection = self.connections.get(connection_id)
        if connection is None:
            raise ApiError(404, f"connection {connection_id} not found")
        validate("ConnectionPatchRequest", body)
        if "configurations" in body:
            source = self.actors["source"][connection["sourceId"]]
            connection["configurations"] = {"streams": self._streams(source, body)}
        keys = ("name", "status", "schedule", "prefix", "namespaceDefinition")
        connection.update({k: body[k] for k in keys if k in body})
        return connection

    # -- jobs ------------------------------------------------------------------------------
    def _jobs(self, method: str, seg: list[str], query: dict[str, str], body: Any) -> Any:
        if len(seg) == 1 and method == "GET":
            jobs = [j for j in self.jobs.values() if j["connectionId"] == query.get("connectionId")]
            return self._page([self._job_out(j) for j in jobs], query)
        if len(seg) == 1 and method == "POST":
            validate("JobCreateRequest", body)
            return self._job_out(self._start(body["connectionId"]))
        job = self.jobs.get(int(seg[1])) if seg[1].isdigit() else None
        if job is None:
            raise ApiError(404, f"job {seg[1]} not found")
        if method == "DELETE" and job["status"] == "running":
            job["status"] = "cancelled"
        elif method == "GET" and job["status"] == "running":
            self._finish(job)
        return self._job_out(job)

    def _start(self, connection_id: str) -> dict[str, Any]:
        connection = self.connections.get(connection_id)
        if connection is None:
            raise ApiError(404, f"connection {connection_id} not found")
        if any(
            j["connectionId"] == connection_id and j["status"] == "running"
            for j in self.jobs.values()
        ):
            raise ApiError(409, "A sync is already running for this connection.")
        job_id = len(self.jobs) + 1
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.jobs[job_id] = {
            "jobId": job_id,
            "connectionId": connection_id,
            "status": "running",
            "jobType": "sync",
            "startTime": started,
            "stats": [],
            "failures": [],
        }
        return self.jobs[job_id]

    def _finish(self, job: dict[str, Any]) -> None:
        connection = self.connections[job["connectionId"]]
        source = self.actors["source"][connection["sourceId"]]
        if self.fail_next_job is not None:
            job["status"] = "failed"
            job["failures"] = [
                {"failureOrigin": "source", "failureType": "config_error",
                 "externalMessage": self.fail_next_job, "timestamp": int(time.time() * 1000)}
            ]  # fmt: skip
            self.fail_next_job = None
            return
        job["status"] = "succeeded"
        for stream in connection["configurations"]["streams"]:
            n = records(source["sourceType"], source["configuration"], stream["name"])
            job["stats"].append(
                {
                    "streamName": stream["name"],
                    "stats": {"recordsEmitted": n, "recordsCommitted": n, "bytesEmitted": 64 * n},
                }
            )

    def _job_out(self, job: dict[str, Any]) -> Any:
        shown = {k: v for k, v in job.items() if k not in ("stats", "failures")}
        if job["status"] == "succeeded":
            shown["rowsSynced"] = sum(s["stats"]["recordsCommitted"] for s in job["stats"])
        return self._out("JobResponse", shown)

    def _config(self, method: str, path: str, body: Any) -> Any:
        """The Configuration API's ``connections/get`` and ``jobs/get`` (both POST)."""
        if method == "POST" and path == "/connections/get":
            if not isinstance(body, dict) or not isinstance(body.get("connectionId"), str):
                raise ApiError(400, "ConnectionIdRequestBody: connectionId is required")
            connection = self.connections.get(body["connectionId"])
            if connection is None:
                raise ApiError(404, f"connection {body['connectionId']} not found")
            config = {"syncMode": "full_refresh", "destinationSyncMode": "overwrite"}
            streams = [
                {
                    "stream": {"name": s["name"], "supportedSyncModes": ["full_refresh"]},
                    "config": {**config, "selected": True},
                }
                for s in connection["configurations"]["streams"]
            ]
            return {**connection, "syncCatalog": {"streams": streams}}
        if method == "POST" and path == "/jobs/get":
            if not isinstance(body, dict) or not isinstance(body.get("id"), int):
                raise ApiError(400, "JobIdRequestBody: id (int64) is required")
            job = self.jobs.get(body["id"])
            if job is None:
                raise ApiError(404, f"job {body['id']} not found")
            attempt = {
                "id": 0,
                "status": job["status"],
                "streamStats": job["stats"],
                "failureSummary": {"failures": job["failures"], "partialSuccess": False},
            }
            read = {"id": job["jobId"], "configType": "sync", "status": job["status"]}
            return {"job": read, "attempts": [{"attempt": attempt, "logs": {"logLines": []}}]}
        raise ApiError(404, f"no route {method} {CONFIG}{path}")

    # -- helpers ---------------------------------------------------------------------------
    def _page(self, items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0))
        page: dict[str, Any] = {"data": items[offset : offset + limit]}
        if offset + limit < len(items):
            page["next"] = f"http://next?limit={limit}&offset={offset + limit}"
        return page

    def _out(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            validate(model, body)
        except ApiError as err:
            self.errors.append(err.detail)
            raise ApiError(500, f"the loopback broke {model}: {err.detail}") from None
        return body
