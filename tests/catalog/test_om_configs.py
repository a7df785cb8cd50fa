"""The catalog configs in platform/catalog/openmetadata/ parse as OpenMetadata parses them.

No OpenMetadata server can run on this machine (it ships as container images and release
archives only), so the ingestion workflow for OpenMetadata's own Dagster connector is parsed by
the openmetadata environment's own code (``load_config_file`` and
``parse_workflow_config_gracefully`` into ``OpenMetadataWorkflowConfig``, what
``metadata ingest -c`` runs), and ``test_dagster_connector.py`` runs its ``source`` against a
real Dagster webserver. The server's env file is checked for the settings it must carry and for
secrets it must not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.catalog.dagster_fixture import OM_WORKFLOW, run_in_om_env

PROBE = Path(__file__).with_name("om_config_probe.py")
SERVER_ENV = OM_WORKFLOW.parent / "openmetadata-server.env"
TOKEN = "header.payload.signature-not-a-real-token"
SECRET_NAMES = re.compile(r"PASSWORD|FERNET|SECRET_KEY|TOKEN")


@pytest.fixture(scope="module")
def parsed() -> dict:
    """The workflow as the openmetadata env parses it, with a token in the environment."""
    env = {**os.environ, "ONERING_OPENMETADATA_JWT": TOKEN}
    return run_in_om_env("-W", "ignore", str(PROBE), str(OM_WORKFLOW), env=env)


def test_the_dagster_workflow_parses_with_openmetadatas_own_model(parsed: dict) -> None:
    assert parsed["source_type"] == "dagster"
    assert parsed["service"] == "onering_dagster"
    assert parsed["dagster_connection"] is True
    assert parsed["host"].rstrip("/") == "http://dagster-webserver:3000"
    assert parsed["db_services"] == ["onering_clickhouse", "onering_postgres"]
    assert parsed["sink"] == "metadata-rest"
    assert parsed["server"] == "http://openmetadata-server:8585/api"
    assert parsed["auth_provider"] == "openmetadata"
    assert parsed["token_placeholder_in_file"] is True
    assert parsed["token_from_env"] is True
    assert TOKEN not in OM_WORKFLOW.read_text()


def test_the_workflow_sets_the_timeout_the_connector_cannot_default(parsed: dict) -> None:
    """openmetadata-ingestion 2.0.7.0's DagsterConnection defaults ``timeout`` to the string
    ``'1000'`` (a default pydantic does not validate), which ``requests`` refuses on every call;
    an explicit integer is required (``test_dagster_connector.py`` fails without it)."""
    assert parsed["timeout_is_int"] is True
    assert 0 < parsed["timeout"] <= 600


def test_hand_broken_workflows_are_refused_or_checked_here(parsed: dict) -> None:
    """The parse refuses a wrong connection type, a misspelled connection field, a non-numeric
    timeout and an unknown auth provider. It accepts a misspelled ``dbServiceNames`` (the
    connector then searches every service) and a missing sink: the test above checks those
    values itself."""
    assert parsed["broken_copies_fail"] == {
        "unknown connection type": True,
        "misspelled connection field": True,
        "timeout not a number": True,
        "unknown auth provider": True,
        "misspelled lineage field": False,
        "no sink": False,
    }


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"line {number}: {line!r}"
        values[name] = value
    return values


def test_the_server_env_names_database_search_and_auth_without_secrets() -> None:
    settings = _env_file(SERVER_ENV)
    required = {
        "DB_DRIVER_CLASS", "DB_SCHEME", "DB_HOST", "DB_PORT", "OM_DATABASE", "DB_USER",
        "DB_USER_PASSWORD", "SEARCH_TYPE", "ELASTICSEARCH_HOST", "ELASTICSEARCH_PORT",
        "AUTHENTICATION_PROVIDER", "AUTHORIZER_ADMIN_PRINCIPALS", "AUTHORIZER_INGESTION_PRINCIPALS",
        "RSA_PUBLIC_KEY_FILE_PATH", "RSA_PRIVATE_KEY_FILE_PATH", "JWT_ISSUER", "JWT_KEY_ID",
        "SERVER_HOST_API_URL",
    }  # fmt: skip
    assert required <= set(settings)
    assert settings["DB_DRIVER_CLASS"] == "org.postgresql.Driver"
    assert settings["SERVER_HOST_API_URL"] == "http://openmetadata-server:8585/api"
    for name, value in settings.items():
        if SECRET_NAMES.search(name) and value:
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", value), f"{name} holds a literal secret"
