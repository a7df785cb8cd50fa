"""Which environment a build writes to: production, or an environment's namespaces.

Production is ``silver`` and ``gold``; environment ENV is ``silver__ENV`` and ``gold__ENV``
(see onering_assets/change/envs.py). A run tagged ``onering/env=ENV`` builds every table
into that environment's namespaces: the assets set the environment here for the time of
their step, and the code that names a published table (never a staging table: staging
stays in ``silver``) asks ``silver_db()`` and ``gold_schema()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from onering_assets.errors import ConfigError

if TYPE_CHECKING:
    import dagster as dg

ENV_TAG = "onering/env"
SEPARATOR = "__"
PROD = "prod"  # what plan, apply and the records call production
COMPLETE = "_complete"  # in silver__ENV: made last by `onering env create` (change/envs.py)
ENV_GROUPS = ("silver", "gold")  # the asset groups an environment holds (change/envs.py)
NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_current: ContextVar[str] = ContextVar("onering_env", default="")


def check_name(env: str) -> str:
    """``env`` if it can name an environment (it becomes part of database names)."""
    if not NAME.fullmatch(env) or SEPARATOR in env or env == PROD:
        raise ConfigError(
            f"{env!r} is not an environment name: lower-case letters, digits and single "
            f"underscores, starting with a letter, at most 31 characters, not {PROD!r}."
        )
    return env


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


def of_run(context: dg.AssetExecutionContext) -> str:
    """The environment a run builds (its ``onering/env`` tag), refused unless it exists.

    A tag is free text (an Airflow DAG exported with ``--env``, ``onering materialize
    --tag``): its value becomes part of database names only once it is a valid name of an
    environment that ``onering env create`` (or ``apply --env``) made.

    Raises:
        ConfigError: otherwise; the step fails before writing anything, and the Airflow
            bridge does not retry it (a retry would fail the same way).
    """
    env = context.run.tags.get(ENV_TAG, "")
    if not env:
        return env
    check_name(env)
    root = Path(context.instance.root_directory or "")
    if root.parts[-3:] != ("envs", env, "dagster"):  # runner.env_home: never production's
        raise ConfigError(
            f"A run of environment {env!r} goes to the environment's own Dagster instance "
            f"(`onering apply --env {env}`, `onering materialize --tag {ENV_TAG}={env}`, its "
            f"Airflow DAGs), not to {root}."
        )
    ch = context.resources.clickhouse
    exists = not (ch.data_dir is not None and not ch.data_dir.exists()) and bool(
        ch.get_client()
        .query(  # the table `onering env create` makes last, once the rest is there
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": silver_db(env), "t": COMPLETE},
        )
        .result_rows[0][0]
    )
    if not exists:
        raise ConfigError(
            f"Environment {env!r} (run tag {ENV_TAG}) does not exist, or its creation was "
            f"stopped: `onering env create {env}` (after `onering env drop {env}` for a stopped "
            f"one), or build it with `onering apply --env {env}`."
        )
    return env
