"""Run a compose service's healthcheck here, against the real server on loopback.

The images' healthchecks ask each service's own HTTP API with bash's ``/dev/tcp`` (the images
have no curl). The same command runs here against the same release started by a test, with
the compose host and port replaced by the test's, so a probe that cannot pass is caught
without Docker.
"""

from __future__ import annotations

import subprocess

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
