"""Run a compose service's healthcheck here, against the real server on loopback.

The images' healthchecks ask each service's own HTTP API with bash's ``/dev/tcp`` (the images
have no curl). The same command runs here against the same release started by a test, with
the compose host and port replaced by the test's, so a probe that cannot pass is caught
without Docker.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from onering_assets.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "compose" / "docker-compose.yml"


def healthcheck(service: str) -> list[str]:
    """The service's healthcheck command (``CMD`` form) as argv."""
    test = yaml.safe_load(COMPOSE.read_text())["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD", f"{service}: expected the CMD form, got {test[0]}"
    return list(test[1:])


def probe(service: str, address: str, replacement: str) -> int:
    """Exit status of ``service``'s healthcheck with ``address`` (host/port) replaced."""
    argv = healthcheck(service)
    assert any(address in part for part in argv), f"{service} does not probe {address}"
    argv = [part.replace(address, replacement) for part in argv]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


ENV_EXAMPLE = PROJECT_ROOT / "compose" / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ is a literal $.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def document() -> dict[str, Any]:
    """The compose file as compose reads it (YAML anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE.read_text())


def variables(text: str) -> set[str]:
    """The names of the ``${VAR…}`` references in ``text``."""
    return {match.group(1) for match in VARIABLE.finditer(text)}


def interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` with its variables replaced as compose does (``$$`` left as ``$``)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        current = env.get(name)
        if op in (":-", ":?") and not current:
            current = None
        if current is None:
            if op and op.endswith("?"):
                raise KeyError(f"{name}: {arg}")
            return arg or ""
        return current

    return VARIABLE.sub(one, value).replace("$$", "$")


def env_example() -> dict[str, tuple[str, str]]:
    """``.env.example`` as ``{name: (value, the comment line above it)}``."""
    entries: dict[str, tuple[str, str]] = {}
    previous = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = (value, previous)
        previous = line.strip()
    return entries


def host_paths(service: dict[str, Any]) -> list[str]:
    """The host side of ``service``'s bind mounts and ``env_file``s that live in the repo."""
    paths = [
        volume.split(":", 1)[0]
        for volume in service.get("volumes", [])
        if isinstance(volume, str) and volume.startswith((".", "/"))
    ]
    files = service.get("env_file", [])
    paths += [files] if isinstance(files, str) else list(files)
    return [path for path in paths if path.startswith(".")]
