# pyright: reportMissingImports=false
"""Parse an ingestion workflow as `metadata ingest -c FILE` does; print what it holds.

Runs in the openmetadata environment only (``envs/openmetadata/.venv/bin/python``), started
by ``tests/catalog/test_om_configs.py``::

    om_config_probe.py WORKFLOW_YAML

The file is read with ``load_config_file`` (which expands ``${…}`` from the environment) and
parsed with ``parse_workflow_config_gracefully`` into ``OpenMetadataWorkflowConfig``, the CLI's
own path. Then hand-broken copies of it are parsed the same way, to show the parse bites.
Prints one JSON object; never the token (only whether it came from the environment).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metadata.config.common import load_config_file
from metadata.generated.schema.entity.services.connections.pipeline.dagsterConnection import (
    DagsterConnection,
)
from metadata.ingestion.api.parser import parse_workflow_config_gracefully

TOKEN_ENV = "ONERING_OPENMETADATA_JWT"


def _connection(config: dict) -> dict:
    return config["source"]["serviceConnection"]["config"]


def _lineage(config: dict) -> dict:
    return config["source"]["sourceConfig"]["config"]["lineageInformation"]


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


BREAKS: dict[str, Callable[[dict], None]] = {
    "unknown connection type": lambda c: _connection(c).update(type="Dagstr"),
    "misspelled connection field": lambda c: _rename(_connection(c), "host", "hots"),
    "misspelled lineage field": lambda c: _rename(_lineage(c), "dbServiceNames", "dbServices"),
    "timeout not a number": lambda c: _connection(c).update(timeout="soon"),
    "no sink": lambda c: c.pop("sink"),
    "unknown auth provider": lambda c: c["workflowConfig"]["openMetadataServerConfig"].update(
        authProvider="password"
    ),
}


def _fails(config: dict) -> bool:
    try:
        parse_workflow_config_gracefully(config)
    except Exception:
        return True
    return False


def describe(path: Path) -> dict[str, Any]:
    """The parsed workflow's settings, and for each hand-broken copy whether parsing fails."""
    raw = load_config_file(path)
    config = parse_workflow_config_gracefully(copy.deepcopy(raw))
    source = config.source
    connection = source.serviceConnection.root.config
    server = config.workflowConfig.openMetadataServerConfig
    token = server.securityConfig.jwtToken.get_secret_value()
    return {
        "source_type": source.type,
        "service": source.serviceName,
        "dagster_connection": isinstance(connection, DagsterConnection),
        "host": str(connection.host),
        "timeout": connection.timeout,
        "timeout_is_int": type(connection.timeout) is int,
        "db_services": source.sourceConfig.config.lineageInformation.dbServiceNames,
        "sink": config.sink.type,
        "server": server.hostPort,
        "auth_provider": server.authProvider.value,
        "token_from_env": bool(os.environ.get(TOKEN_ENV)) and token == os.environ[TOKEN_ENV],
        "token_placeholder_in_file": "${" + TOKEN_ENV + "}" in path.read_text(),
        "broken_copies_fail": {
            name: _fails(_broken(raw, breaks)) for name, breaks in sorted(BREAKS.items())
        },
    }


def _broken(raw: dict, breaks: Callable[[dict], None]) -> dict:
    config = copy.deepcopy(raw)
    breaks(config)
    return config


def main() -> None:
    sys.stdout.write(json.dumps(describe(Path(sys.argv[1])), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
