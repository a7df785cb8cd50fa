"""Which environment a build writes to: production, or an environment's namespaces.

Production is ``silver`` and ``gold``; environment ENV is ``silver__ENV`` and ``gold__ENV``
(see onering_assets/change/envs.py). A run tagged ``onering/env=ENV`` builds every table
into that environment's namespaces: the assets set the environment here for the time of
their step, and the code that names a published table (never a staging table: staging
stays in ``silver``) asks ``silver_db()`` and ``gold_schema()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

ENV_TAG = "onering/env"
SEPARATOR = "__"
_current: ContextVar[str] = ContextVar("onering_env", default="")


def current() -> str:
    """The environment being built ("" for production)."""
    return _current.get()


def silver_db(env: str | None = None) -> str:
    env = current() if env is None else env
    return f"silver{SEPARATOR}{env}" if env else "silver"


def gold_schema(env: str | None = None) -> str:
    env = current() if env is None else env
    return f"gold{SEPARATOR}{env}" if env else "gold"


@contextmanager
def building(env: str) -> Iterator[None]:
    """Name published tables in ``env``'s namespaces (production for "") meanwhile."""
    token = _current.set(env)
    try:
        yield
    finally:
        _current.reset(token)
