r"""Push OneRing's secrets from your environment into an Infisical project (idempotent).

    INFISICAL_URL=https://app.infisical.com INFISICAL_CLIENT_ID=… INFISICAL_CLIENT_SECRET=… \\
    INFISICAL_PROJECT_ID=… INFISICAL_ENVIRONMENT=dev \\
    .venv/bin/python platform/security/infisical/onboard.py [--dry-run] [--name NAME …]

The names are the ones ``compose/.env.example`` marks ``(secret)`` plus the secrets a OneRing
process reads (``onering_assets.secrets.SECRET_NAMES``), or the ``--name`` ones. Each value
is read from your environment: a name that is unset (or empty) is skipped; a secret missing
from Infisical is created, one with another value updated, an equal one left alone. It prints
one line per name (what it did, never a value) and exits 1 with one line if Infisical
refuses the machine identity or cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from onering_assets.errors import OneRingError
from onering_assets.secrets import (
    SECRET_NAMES,
    InfisicalSettings,
    SecretsRefusedError,
    client_for,
)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ENV_EXAMPLE = PROJECT_ROOT / "compose" / ".env.example"
_VARIABLE = re.compile(r"^([A-Z_][A-Z0-9_]*)=")


def example_secrets(path: Path = ENV_EXAMPLE) -> list[str]:
    """The variables of ``path`` whose comment block says ``(secret)``."""
    names, comment = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            comment += line
            continue
        match = _VARIABLE.match(line)
        if match and "(secret" in comment:
            names.append(match.group(1))
        comment = ""
    return names


def secret_names(path: Path = ENV_EXAMPLE) -> list[str]:
    """The compose stack's secrets, then OneRing's own, each once."""
    return list(dict.fromkeys([*example_secrets(path), *SECRET_NAMES]))


def onboard(
    settings: InfisicalSettings,
    names: Sequence[str],
    values: Mapping[str, str],
    *,
    dry_run: bool = False,
) -> list[tuple[str, str]]:
    """Create or update each of ``names`` set in ``values``; ``(name, what happened)`` each.

    Raises:
        SecretsRefusedError, SecretsUnavailableError: see ``client_for``.
    """
    from infisical_sdk.infisical_requests import APIError

    client = client_for(settings)
    where = {
        "environment_slug": settings.environment,
        "secret_path": settings.secret_path,
        "project_id": settings.project_id,
    }
    done: list[tuple[str, str]] = []
    try:
        for name in names:
            value = values.get(name, "")
            if not value:
                done.append((name, "skipped (not set in your environment)"))
                continue
            try:
                current = client.secrets.get_secret_by_name(
                    secret_name=name, expand_secret_references=False, **where
                ).secretValue
            except APIError as e:
                if e.status_code != 404:
                    raise _refused(settings, e.status_code) from None
                current = None
            if current == value:
                done.append((name, "unchanged"))
                continue
            action = "created" if current is None else "updated"
            if not dry_run:
                try:
                    if current is None:
                        client.secrets.create_secret_by_name(
                            secret_name=name, secret_value=value, **where
                        )
                    else:
                        client.secrets.update_secret_by_name(
                            current_secret_name=name, secret_value=value, **where
                        )
                except APIError as e:
                    raise _refused(settings, e.status_code) from None
            done.append((name, action + (" (dry run)" if dry_run else "")))
    finally:
        client.close()
    return done


def _refused(settings: InfisicalSettings, status: int) -> SecretsRefusedError:
    return SecretsRefusedError(
        f"Infisical refused to read or write secrets (HTTP {status}): check {settings.where()} "
        "and that the identity may write there."
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--name", action="append", help="push only these names (repeatable)")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would change; write nothing"
    )
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    try:
        settings = InfisicalSettings.from_env(env)
        if settings is None:
            sys.stderr.write(
                "Set INFISICAL_URL, INFISICAL_CLIENT_ID, INFISICAL_CLIENT_SECRET, "
                "INFISICAL_PROJECT_ID and INFISICAL_ENVIRONMENT (see README.md here).\n"
            )
            return 2
        done = onboard(settings, args.name or secret_names(), env, dry_run=args.dry_run)
    except OneRingError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    sys.stdout.write(f"Infisical {settings.where()}:\n")
    width = max((len(name) for name, _ in done), default=0)
    for name, what in done:
        sys.stdout.write(f"  {name.ljust(width)}  {what}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
