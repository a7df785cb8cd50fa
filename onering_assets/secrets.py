"""The one secret resolver: the process environment, then a ``.env`` file, then Infisical.

``resolve(name)`` answers from the first source with a value: ``os.environ``; the
``KEY=VALUE`` file ``ONERING_DOTENV`` (default ``<repo>/.env``); Infisical when the
``INFISICAL_*`` variables are set (one universal-auth login and one listing through the
official ``infisicalsdk``, cached per process). The compose profile calls
``provide_compose()`` (from ``Settings.from_env``), which puts the values into the process
environment, where Dagster reads them at run time through ``dg.EnvVar``: never into
definitions, metadata, run config or a log line. Errors name variables, never values. See
docs/secrets.md.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from onering_assets.errors import ConfigError, OneRingError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOTENV_ENV = "ONERING_DOTENV"
INFISICAL_URL = "INFISICAL_URL"
INFISICAL_CLIENT_ID = "INFISICAL_CLIENT_ID"
INFISICAL_CLIENT_SECRET = "INFISICAL_CLIENT_SECRET"
INFISICAL_PROJECT_ID = "INFISICAL_PROJECT_ID"
INFISICAL_ENVIRONMENT = "INFISICAL_ENVIRONMENT"
INFISICAL_SECRET_PATH = "INFISICAL_SECRET_PATH"
INFISICAL_TIMEOUT = "INFISICAL_TIMEOUT"
INFISICAL_REQUIRED = (INFISICAL_URL, INFISICAL_CLIENT_ID, INFISICAL_CLIENT_SECRET)
INFISICAL_REQUIRED += (INFISICAL_PROJECT_ID, INFISICAL_ENVIRONMENT)

# The secrets a OneRing process of the compose profile may need (compose/.env.example marks
# the stack's own secrets "(secret)"; the onboarding script pushes those).
SECRET_NAMES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "CLICKHOUSE_PASSWORD",
    "POSTGRES_PASSWORD",
    "ONERING_READER_PASSWORD",
    "ONERING_OPENMETADATA_JWT",
    "ONERING_AIRBYTE_CLIENT_ID",
    "ONERING_AIRBYTE_CLIENT_SECRET",
)
# The compose profile's connection strings, whose ``${NAME}`` references are expanded.
COMPOSE_DSNS = (
    "ONERING_CLICKHOUSE_DSN",
    "ONERING_POSTGRES_DSN",
    "ONERING_POSTGRES_READER_DSN",
    "ONERING_FEAST_REGISTRY_URL",
)

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class SecretsUnavailableError(OneRingError):
    """Infisical cannot be reached (running again may succeed)."""


class SecretsRefusedError(ConfigError):
    """Infisical refused the credentials or the project, environment or path."""


def parse_dotenv(text: str) -> dict[str, str]:
    r"""``KEY=VALUE`` lines (``export`` allowed, ``#`` comments, quotes stripped, no expansion).

    A double-quoted value understands ``\n``, ``\"`` and ``\\``; a single-quoted one is
    literal; an unquoted one ends at `` #``.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        name, raw = match.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            value = raw[1:-1]
        elif len(raw) >= 2 and raw[0] == raw[-1] == '"':
            value = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), raw[1:-1])
        else:
            value = re.split(r"\s+#", raw, maxsplit=1)[0]
        values[name] = value
    return values


@dataclass(frozen=True)
class InfisicalSettings:
    """Where the secrets live in Infisical and the machine identity that reads them."""

    url: str
    client_id: str
    client_secret: str
    project_id: str
    environment: str
    secret_path: str = "/"
    timeout_s: float = 10.0

    def __repr__(self) -> str:  # the client secret never shows
        return (
            f"InfisicalSettings(url={self.url!r}, project_id={self.project_id!r}, "
            f"environment={self.environment!r}, secret_path={self.secret_path!r})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> InfisicalSettings | None:
        """``None`` unless every ``INFISICAL_*`` variable it needs is set.

        Raises:
            ConfigError: only some of them are set, or ``INFISICAL_URL`` is not http(s).
        """
        present = [name for name in INFISICAL_REQUIRED if env.get(name, "").strip()]
        if not present:
            return None
        missing = [name for name in INFISICAL_REQUIRED if name not in present]
        if missing:
            raise ConfigError(
                f"Infisical is half configured: set {', '.join(missing)} too "
                f"(or unset {', '.join(present)})."
            )
        url = env[INFISICAL_URL].strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{INFISICAL_URL}={_shown(url)!r} must be http(s)://host, "
                "e.g. https://app.infisical.com."
            )
        timeout = env.get(INFISICAL_TIMEOUT, "10")
        try:
            timeout_s = float(timeout)
        except ValueError:
            timeout_s = -1.0
        if not 0 < timeout_s < float("inf"):
            raise ConfigError(f"{INFISICAL_TIMEOUT}={timeout!r} must be a positive number.")
        return cls(
            url=url,
            client_id=env[INFISICAL_CLIENT_ID].strip(),
            client_secret=env[INFISICAL_CLIENT_SECRET].strip(),
            project_id=env[INFISICAL_PROJECT_ID].strip(),
            environment=env[INFISICAL_ENVIRONMENT].strip(),
            secret_path=env.get(INFISICAL_SECRET_PATH, "").strip() or "/",
            timeout_s=timeout_s,
        )

    def where(self) -> str:
        return (
            f"{INFISICAL_PROJECT_ID}={self.project_id}, {INFISICAL_ENVIRONMENT}={self.environment}"
            f", {INFISICAL_SECRET_PATH}={self.secret_path}"
        )


def _shown(url: str) -> str:
    """``url`` without a user, password, path or query, for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}" if parts.scheme and host else "(not a URL)"


def client_for(settings: InfisicalSettings) -> Any:
    """An ``InfisicalSDKClient`` logged in with universal auth (its own cache off).

    Raises:
        SecretsUnavailableError: Infisical cannot be reached.
        SecretsRefusedError: it refused the client id and secret.
    """
    from infisical_sdk import InfisicalSDKClient
    from infisical_sdk.infisical_requests import APIError, InfisicalError

    _reachable(settings)
    client = InfisicalSDKClient(host=settings.url, cache_ttl=None)  # type: ignore[arg-type]
    session = _TimeoutSession(settings.timeout_s)
    session.headers.update(client.api.session.headers)
    client.api.session = session
    try:
        client.auth.universal_auth.login(settings.client_id, settings.client_secret)
    except APIError as e:
        if e.status_code == 404:
            raise SecretsRefusedError(
                f"{_shown(settings.url)} has no Infisical universal-auth login (HTTP 404): "
                f"check {INFISICAL_URL}."
            ) from None
        raise SecretsRefusedError(
            f"Infisical at {_shown(settings.url)} refused the machine identity (HTTP "
            f"{e.status_code}): check {INFISICAL_CLIENT_ID} and {INFISICAL_CLIENT_SECRET}."
        ) from None
    except (InfisicalError, requests.RequestException, OSError, ValueError, KeyError, TypeError):
        raise _unreachable(settings, "no valid answer to the login") from None
    return client


def fetch_infisical(settings: InfisicalSettings) -> dict[str, str]:
    """Every secret at the configured project, environment and path, in one listing.

    Imported secrets are included; the folder's own secrets win over them.

    Raises:
        SecretsUnavailableError: Infisical cannot be reached.
        SecretsRefusedError: it refused the credentials or the project, environment or path.
    """
    from infisical_sdk.infisical_requests import APIError, InfisicalError

    client = client_for(settings)
    try:
        listing = client.secrets.list_secrets(
            environment_slug=settings.environment,
            secret_path=settings.secret_path,
            project_id=settings.project_id,
            expand_secret_references=True,
            view_secret_value=True,
            include_imports=True,
        )
    except APIError as e:
        raise SecretsRefusedError(
            f"Infisical at {_shown(settings.url)} refused to list secrets (HTTP {e.status_code})"
            f": check {settings.where()} and the identity's access to them."
        ) from None
    except (InfisicalError, requests.RequestException, OSError, ValueError, KeyError, TypeError):
        raise _unreachable(settings, "no valid answer to the secrets listing") from None
    finally:
        client.close()
    values: dict[str, str] = {}
    for folder in listing.imports:
        values.update({s.secretKey: s.secretValue for s in folder.secrets})
    values.update({s.secretKey: s.secretValue for s in listing.secrets})
    return values


def _reachable(settings: InfisicalSettings) -> None:
    """Fail fast (the SDK retries a refused connection four times over ~15 s)."""
    parts = urlsplit(settings.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=settings.timeout_s):
            pass
    except OSError as e:
        raise _unreachable(settings, type(e).__name__) from None


def _unreachable(settings: InfisicalSettings, why: str) -> SecretsUnavailableError:
    return SecretsUnavailableError(
        f"Infisical at {_shown(settings.url)} is unreachable ({why}): check {INFISICAL_URL} "
        f"(and {INFISICAL_TIMEOUT}), or unset the INFISICAL_* variables to use only the "
        "environment and .env."
    )


class _TimeoutSession(requests.Session):
    """The SDK sets no timeout; a hung Infisical must not hang a run."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(*args, **kwargs)


class Secrets:
    """Secrets of one configuration: the environment, then ``.env``, then Infisical.

    The ``.env`` file is read and Infisical asked at most once, on the first name that the
    sources before them do not define.
    """

    def __init__(self, env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> None:
        self.env = os.environ if env is None else env
        default = self.env.get(DOTENV_ENV) or str(PROJECT_ROOT / ".env")
        self.dotenv_path = dotenv if dotenv is not None else Path(default).expanduser()
        self.infisical = InfisicalSettings.from_env(self.env)
        self._dotenv: dict[str, str] | None = None
        self._remote: dict[str, str] | None = None
        self._lock = threading.Lock()

    def dotenv(self) -> dict[str, str]:
        """The ``.env`` file's values (empty when there is no file)."""
        if self._dotenv is None:
            path = self.dotenv_path
            self._dotenv = parse_dotenv(path.read_text()) if path.is_file() else {}
        return self._dotenv

    def remote(self) -> dict[str, str]:
        """Infisical's values (empty when it is not configured), fetched once."""
        with self._lock:
            if self._remote is None:
                self._remote = fetch_infisical(self.infisical) if self.infisical else {}
            return self._remote

    def source_of(self, name: str) -> str | None:
        """``environment``, ``.env``, ``infisical`` or ``None``: where ``name`` comes from.

        An empty value counts as unset (``compose/.env.example`` leaves secrets empty), unless
        no later source has a value either.
        """
        fallback = None
        if name in self.env:
            if self.env[name]:
                return "environment"
            fallback = "environment"
        dotenv = self.dotenv()
        if name in dotenv:
            if dotenv[name]:
                return ".env"
            fallback = fallback or ".env"
        if self.remote().get(name):
            return "infisical"
        return fallback or ("infisical" if name in self.remote() else None)

    def resolve(self, name: str) -> str | None:
        """The value of ``name`` from the first source defining it, or ``None``."""
        source = self.source_of(name)
        if source == "environment":
            return self.env[name]
        if source == ".env":
            return self.dotenv()[name]
        if source == "infisical":
            return self.remote()[name]
        return None

    def expand(self, value: str) -> str:
        """``value`` with each ``${NAME}`` this resolver knows replaced (others kept)."""

        def fill(match: re.Match[str]) -> str:
            found = self.resolve(match.group(1))
            return match.group(0) if found is None else found

        return _REFERENCE.sub(fill, value)

    def provide(self, names: Iterable[str], target: MutableMapping[str, str]) -> list[str]:
        """Set each of ``names`` missing (or empty) in ``target`` that a source defines.

        Values get their ``${…}`` references expanded. Returns the names set, never values.
        """
        provided = []
        for name in dict.fromkeys(names):
            if target.get(name):
                continue
            value = self.resolve(name)
            if value:
                target[name] = self.expand(value)
                provided.append(name)
        return provided


_CACHE: dict[tuple[str, ...], Secrets] = {}
_CACHE_LOCK = threading.Lock()


def process_secrets() -> Secrets:
    """This process's resolver: one per ``.env`` path and Infisical configuration."""
    key = tuple(os.environ.get(n, "") for n in (DOTENV_ENV, *INFISICAL_REQUIRED))
    key += (os.environ.get(INFISICAL_SECRET_PATH, ""),)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Secrets()
        return _CACHE[key]


def clear_cache() -> None:
    """Forget every fetched value (tests; a rotated secret needs a new process otherwise)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def resolve(name: str) -> str | None:
    """``name`` from the environment, then ``.env``, then Infisical; ``None`` if none has it."""
    return process_secrets().resolve(name)


def provide_compose(target: MutableMapping[str, str] | None = None) -> list[str]:
    """Put what the compose profile reads through ``dg.EnvVar`` into the process environment.

    Sets every variable of the ``.env`` file, every ``SECRET_NAMES`` secret and every
    connection string missing from the environment, from ``.env`` or Infisical, and expands
    ``${NAME}`` (e.g. ``${POSTGRES_PASSWORD}``) in the connection strings. Dagster then
    resolves its ``EnvVar`` settings from the environment when a run opens its resources,
    and child processes (a step, an Airflow task's ``onering``) inherit them. Returns the
    names set or rewritten, never values.
    """
    environ = os.environ if target is None else target
    secrets = process_secrets() if target is None else Secrets(env=environ)
    names = [*secrets.dotenv(), *COMPOSE_DSNS, *SECRET_NAMES]
    changed = secrets.provide(names, environ)
    for name in COMPOSE_DSNS:
        value = environ.get(name)
        if value and _REFERENCE.search(value):
            expanded = secrets.expand(value)
            if expanded != value:
                environ[name] = expanded
                changed.append(name)
    return list(dict.fromkeys(changed))
