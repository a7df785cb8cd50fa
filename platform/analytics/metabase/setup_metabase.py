"""Set up Metabase for OneRing through its REST API: connections and a starter dashboard.

Metabase's serialization export is a paid feature, so the content is made by API calls:

1. wait for ``GET /api/health``;
2. ``POST /api/setup`` on first start (the admin from ``METABASE_ADMIN_EMAIL`` /
   ``METABASE_ADMIN_PASSWORD``), else ``POST /api/session`` as that admin;
3. ``POST /api/database``: Gold (Postgres) as the read-only role ``onering_reader`` (the role
   ``onering sql`` uses), and Silver (ClickHouse, the driver plugin in ``plugins/``);
4. ``POST /api/card``: one native question per Gold mart declared under
   ``platform/analytics/clickhouse/gold/``; ``POST /api/dashboard`` and
   ``PUT /api/dashboard/:id`` with ``dashcards``: the starter dashboard holding them.

Run again, it finds what it made by name and creates nothing twice. Run it where OneRing is
installed (``.venv/bin/python platform/analytics/metabase/setup_metabase.py``, or compose's
``metabase-setup`` job); it exits 1 with one line naming what to fix.

Environment: ``METABASE_URL`` (default http://127.0.0.1:3030), ``METABASE_ADMIN_EMAIL``,
``METABASE_ADMIN_PASSWORD``; ``ONERING_READER_PASSWORD`` and ``METABASE_GOLD_HOST``/``_PORT``/
``_DB`` (default postgres:5432/onering, as Metabase's container reaches Gold);
``CLICKHOUSE_PASSWORD`` and ``METABASE_CLICKHOUSE_HOST``/``_PORT``/``_USER``/``_DB`` (default
clickhouse:8123, user onering, database silver); ``METABASE_WAIT_S`` (default 300).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # run as a script from anywhere: onering_assets is beside it
    sys.path.insert(0, str(ROOT))

GOLD_NAME = "OneRing Gold (Postgres)"
SILVER_NAME = "OneRing Silver (ClickHouse)"
DASHBOARD_NAME = "OneRing: Gold marts"
ROW_LIMIT = 2000


class SetupError(Exception):
    """What stopped the setup, in one line that says what to do."""


@dataclass(frozen=True)
class Config:
    url: str
    email: str
    password: str
    reader_password: str
    gold_host: str
    gold_port: int
    gold_db: str
    clickhouse_host: str
    clickhouse_port: int
    clickhouse_user: str
    clickhouse_password: str
    clickhouse_db: str
    wait_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Read the variables the module docstring lists; a missing secret is an error."""

        def need(name: str) -> str:
            value = env.get(name, "")
            if not value:
                raise SetupError(f"{name} is not set: set it (compose/.env.example documents it).")
            return value

        return cls(
            url=env.get("METABASE_URL", "http://127.0.0.1:3030").rstrip("/"),
            email=env.get("METABASE_ADMIN_EMAIL", "admin@onering.local"),
            password=need("METABASE_ADMIN_PASSWORD"),
            reader_password=need("ONERING_READER_PASSWORD"),
            gold_host=env.get("METABASE_GOLD_HOST", "postgres"),
            gold_port=int(env.get("METABASE_GOLD_PORT", "5432")),
            gold_db=env.get("METABASE_GOLD_DB", "onering"),
            clickhouse_host=env.get("METABASE_CLICKHOUSE_HOST", "clickhouse"),
            clickhouse_port=int(env.get("METABASE_CLICKHOUSE_PORT", "8123")),
            clickhouse_user=env.get("METABASE_CLICKHOUSE_USER", "onering"),
            clickhouse_password=need("CLICKHOUSE_PASSWORD"),
            clickhouse_db=env.get("METABASE_CLICKHOUSE_DB", "silver"),
            wait_s=float(env.get("METABASE_WAIT_S", "300")),
        )


class Metabase:
    """A minimal JSON client for Metabase's REST API (stdlib only)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session: str | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.session:
            request.add_header("X-Metabase-Session", self.session)
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode() or "null"
        return json.loads(text)

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.call("GET", "/api/health").get("status") == "ok":
                    return
            except (OSError, ValueError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise SetupError(
                    f"Metabase at {self.url} did not answer /api/health within {seconds:.0f} s: "
                    'start it (make stack-up PROFILES="core bi") or set METABASE_URL.'
                )
            time.sleep(2)

    def log_in(self, config: Config) -> None:
        properties = self.call("GET", "/api/session/properties")
        token = properties.get("setup-token")
        if token and not properties.get("has-user-setup"):
            user = {
                "email": config.email,
                "password": config.password,
                "first_name": "OneRing",
                "last_name": "Admin",
                "site_name": "OneRing",
            }
            prefs = {"site_name": "OneRing", "allow_tracking": False}
            answer = self.call("POST", "/api/setup", {"token": token, "user": user, "prefs": prefs})
        else:
            try:
                answer = self.call(
                    "POST", "/api/session", {"username": config.email, "password": config.password}
                )
            except urllib.error.HTTPError as error:
                if error.code in (400, 401):
                    raise SetupError(
                        f"Metabase refused {config.email}'s password (HTTP {error.code}): set "
                        "METABASE_ADMIN_PASSWORD (and METABASE_ADMIN_EMAIL) to its admin's."
                    ) from None
                raise
        self.session = answer["id"]


def _items(answer: Any) -> list[dict[str, Any]]:
    """A list answer, or the ``data`` of a paged one (``GET /api/database``)."""
    return answer["data"] if isinstance(answer, dict) else answer


def _by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((i for i in items if i.get("name") == name and not i.get("archived")), None)


def databases(config: Config) -> list[dict[str, Any]]:
    """The two connections: Gold as the read-only role, Silver on ClickHouse."""
    from onering_assets.resources.embedded_pg import READER  # the role `onering sql` uses

    gold = {
        "engine": "postgres",
        "name": GOLD_NAME,
        "details": {
            "host": config.gold_host,
            "port": config.gold_port,
            "dbname": config.gold_db,
            "user": READER,
            "password": config.reader_password,
            "ssl": False,
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": "gold",
        },
    }
    silver = {
        "engine": "clickhouse",
        "name": SILVER_NAME,
        "details": {
            "host": config.clickhouse_host,
            "port": config.clickhouse_port,
            "dbname": config.clickhouse_db,
            "user": config.clickhouse_user,
            "password": config.clickhouse_password,
            "ssl": False,
        },
    }
    return [gold, silver]


def mart_questions(database_id: int) -> list[dict[str, Any]]:
    """One native question per declared Gold mart, its rows in key order."""
    from onering_assets.catalog import load_catalog  # imported when needed: it takes seconds

    questions = []
    for mart in load_catalog().gold:
        order = ", ".join(f'"{column}"' for column in mart.key) or "1"
        query = f'SELECT * FROM gold."{mart.name}" ORDER BY {order} LIMIT {ROW_LIMIT}'
        questions.append(
            {
                "name": f"gold.{mart.name}",
                "description": " ".join(mart.description.split()),
                "display": "table",
                "visualization_settings": {},
                "dataset_query": {
                    "type": "native",
                    "database": database_id,
                    "native": {"query": query},
                },
            }
        )
    return questions


def ensure(mb: Metabase, path: str, listing: str, body: dict[str, Any]) -> int:
    """The id of the object named ``body['name']``, created by ``POST path`` if missing."""
    found = _by_name(_items(mb.call("GET", listing)), body["name"])
    if found is not None:
        return int(found["id"])
    return int(mb.call("POST", path, body)["id"])


def set_up(config: Config, say: Any = None) -> dict[str, Any]:
    """Run the whole setup; return the ids it made or found."""
    say = say or (lambda line: sys.stdout.write(f"{line}\n"))
    mb = Metabase(config.url)
    mb.wait(config.wait_s)
    mb.log_in(config)
    connections = databases(config)
    ids = [ensure(mb, "/api/database", "/api/database", db) for db in connections]
    reader = connections[0]["details"]["user"]
    say(f"connections: {GOLD_NAME} as {reader} (id {ids[0]}), {SILVER_NAME} (id {ids[1]})")
    cards = [ensure(mb, "/api/card", "/api/card?f=all", q) for q in mart_questions(ids[0])]
    dashboard = ensure(
        mb,
        "/api/dashboard",
        "/api/dashboard/",
        {"name": DASHBOARD_NAME, "description": "One question per Gold mart (setup_metabase.py)."},
    )
    dashcards = [
        {
            "id": -(i + 1),
            "card_id": card,
            "row": i * 8,
            "col": 0,
            "size_x": 24,
            "size_y": 8,
            "parameter_mappings": [],
            "visualization_settings": {},
        }
        for i, card in enumerate(cards)
    ]
    mb.call("PUT", f"/api/dashboard/{dashboard}", {"dashcards": dashcards})
    say(f"dashboard {DASHBOARD_NAME!r} (id {dashboard}) with {len(cards)} questions")
    return {"databases": ids, "cards": cards, "dashboard": dashboard}


def main(env: Mapping[str, str] | None = None) -> int:
    """Exit 0 when set up; 1 with one line on stderr otherwise."""
    try:
        set_up(Config.from_env(os.environ if env is None else env))
    except SetupError as error:
        sys.stderr.write(f"setup_metabase: {error}\n")
        return 1
    except urllib.error.HTTPError as error:
        sys.stderr.write(f"setup_metabase: Metabase answered HTTP {error.code} to {error.url}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
