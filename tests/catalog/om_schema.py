"""OpenMetadata's request JSON schemas, vendored in ``om_spec/``, resolved and checked."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SPEC_DIR = Path(__file__).parent / "om_spec"
BASE = "https://open-metadata.org/schema/"
# Schemas referenced by the vendored files but not vendored: resolved as "any object" (see README).
STUBS: dict[str, dict[str, Any]] = {"type/lifeCycle.json": {"type": "object"}}


def _retrieve(uri: str) -> Resource[Any]:
    relative = uri.removeprefix(BASE)
    if relative in STUBS:
        return DRAFT7.create_resource(STUBS[relative])
    path = SPEC_DIR / relative
    if not uri.startswith(BASE) or not path.is_file():
        raise LookupError(f"schema {uri} is neither vendored in {SPEC_DIR} nor a listed stub")
    return DRAFT7.create_resource(json.loads(path.read_text()))


@cache
def _registry() -> Registry[Any]:
    return Registry(retrieve=_retrieve)  # pyright: ignore[reportCallIssue,reportArgumentType]


@cache
def validator(relative: str) -> Draft7Validator:
    """A draft-7 validator for one vendored schema, e.g. ``"api/data/createTable.json"``.

    Args:
        relative: The schema's path under ``om_spec/`` (the same path as in OpenMetadata's spec).

    Returns:
        A validator whose ``$ref``s resolve to the other vendored files.
    """
    schema = json.loads((SPEC_DIR / relative).read_text())
    return Draft7Validator(schema, registry=_registry(), format_checker=FormatChecker(["uuid"]))


def schema_errors(relative: str, body: Any, pointer: str = "") -> list[str]:
    """Every violation of a vendored schema by ``body``, as ``"<json path>: <message>"`` lines.

    Args:
        relative: The schema's path under ``om_spec/``.
        body: The parsed JSON request body.
        pointer: Optional ``#/definitions/...`` fragment to validate against instead of the root.

    Returns:
        One line per error, sorted; empty when the body is valid.
    """
    key = (relative, pointer, json.dumps(body, sort_keys=True, default=str))
    if key not in _SEEN:
        if len(_SEEN) > 200_000:
            _SEEN.clear()
        _SEEN[key] = _errors(relative, body, pointer)
    return list(_SEEN[key])


# Re-publishing sends the same bodies again: remember verdicts (validation costs ~1.5 ms a body).
_SEEN: dict[tuple[str, str, str], list[str]] = {}


def _errors(relative: str, body: Any, pointer: str) -> list[str]:
    if pointer:
        schema = {"$ref": BASE + relative + pointer}
        check = Draft7Validator(
            schema, registry=_registry(), format_checker=FormatChecker(["uuid"])
        )
    else:
        check = validator(relative)
    return sorted(f"{err.json_path}: {err.message}" for err in check.iter_errors(body))
