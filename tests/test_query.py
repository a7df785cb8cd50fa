"""`onering sql` under attack, on the real embedded Postgres 18 and chDB.

Each hostile statement must be refused with exit 2 and one line, and leave every store as it
was; the stores must refuse the same statements when the gate is bypassed; store errors
exit 1 with one line; valid reads pass; no password ever reaches the output.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from onering_assets.cli import app
from onering_assets.errors import ReadOnlyError
from onering_assets.query import run_gold, run_silver
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.resources.embedded_pg import load_secrets

pytestmark = pytest.mark.slow
GOLD = "gold.carrier_monthly_performance"
OUTFILE = "/tmp/onering-test-query-outfile.csv"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, make_source):
    """A state folder with January built up to one Gold mart, and a CLI bound to it."""
    folder = tmp_path_factory.mktemp("state")
    env = {
        "ONERING_STATE_DIR": str(folder),
        "ONERING_SOURCE_DIR": str(make_source()),
        "DAGSTER_HOME": str(folder / "dagster"),
        "COLUMNS": "200",
    }
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    built = invoke("materialize", "--select", f'key:"{GOLD.replace(".", "/")}"', "-p", "2013-01")
    assert built.exit_code == 0, built.output
    # The first Gold read gives onering_reader its LOGIN; later fingerprints start from there.
    assert invoke("sql", "--target", "gold", "SELECT 1").exit_code == 0
    return invoke, folder


def owner(folder: Path) -> PostgresResource:
    return PostgresResource(embedded_dir=str(folder / "postgres"))


def reader(folder: Path) -> PostgresResource:
    return PostgresResource(embedded_dir=str(folder / "postgres"), role="reader")


def silver(folder: Path) -> ClickHouseResource:
    return ClickHouseResource(dsn=f"chdb://{folder / 'clickhouse'}")


def fingerprint(folder: Path) -> tuple:
    """What a write would change: Gold's tables, rows and roles; Silver's tables and rows."""
    with owner(folder).connect() as conn:
        gold = conn.execute(f"SELECT count(*), sum(flights), sum(cancelled) FROM {GOLD}").fetchone()
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        roles = conn.execute(
            "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY 1"
        ).fetchall()
    with silver(folder).session() as client:
        counts = client.query(
            "SELECT (SELECT count() FROM silver.flights), (SELECT count() FROM silver.airlines)"
        ).result_rows
        names = client.query(
            "SELECT database, name FROM system.tables WHERE database = 'silver' ORDER BY name"
        ).result_rows
    return gold, tables, roles, counts, names


def assert_one_line_error(result, code: int, secrets: tuple[str, ...]) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    for secret in secrets:
        assert secret not in result.output


def secrets_of(folder: Path) -> tuple[str, ...]:
    return load_secrets((folder / "postgres").resolve(), create=False).all()


HOSTILE = [
    ("gold", f"DELETE FROM {GOLD}"),
    ("gold", f"SELECT 1; COMMIT; DELETE FROM {GOLD} WHERE false"),
    ("gold", f"WITH d AS (DELETE FROM {GOLD} RETURNING 1) SELECT * FROM d"),
    ("gold", f"SELECT * INTO gold.stolen FROM {GOLD}"),
    ("gold", f"EXPLAIN ANALYZE DELETE FROM {GOLD}"),
    ("gold", f"EXPLAIN (ANALYZE) UPDATE {GOLD} SET flights = 0"),
    ("gold", "SELECT pg_read_file('/etc/hostname')"),
    ("gold", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"),
    ("gold", "SELECT set_config('transaction_read_only', 'off', false)"),
    ("gold", f"COPY {GOLD} TO PROGRAM 'id'"),
    ("gold", f"SELECT * FROM {GOLD} FOR UPDATE"),
    ("gold", f"SELECT query_to_xml('DELETE FROM {GOLD}', true, true, '')"),
    ("gold", "SET ROLE postgres"),
    ("gold", "CREATE TABLE gold.planted (a int)"),
    ("gold", "DO $$ BEGIN DELETE FROM gold.route_performance; END $$"),
    ("gold", "SELECT 1 /*"),
    ("gold", ""),
    ("silver", "DROP TABLE silver.flights"),
    ("silver", "INSERT INTO silver.airlines SELECT * FROM silver.airlines"),
    ("silver", "ALTER TABLE silver.flights DELETE WHERE 1"),
    ("silver", "SELECT * FROM file('/etc/hostname', 'LineAsString')"),
    ("silver", "SELECT file('/etc/hostname')"),
    ("silver", "SELECT * FROM url('http://127.0.0.1:9/x.csv', 'CSV', 'a String')"),
    ("silver", "SELECT * FROM remote('127.0.0.1:9', system.one)"),
    ("silver", "SELECT * FROM s3('http://127.0.0.1:9/bucket/k.csv', 'CSV', 'a String')"),
    ("silver", "SELECT * FROM (SELECT * FROM postgresql('127.0.0.1:9', 'd', 't', 'u', 'p'))"),
    ("silver", "SELECT * FROM sqlite('/tmp/onering-test-query.db', 't')"),
    ("silver", "SELECT * FROM python(x)"),
    ("silver", "DESCRIBE TABLE file('/etc/hostname', 'LineAsString')"),
    ("silver", f"SELECT * FROM silver.airlines INTO OUTFILE '{OUTFILE}'"),
    ("silver", "SELECT 1 SETTINGS readonly = 0"),
    ("silver", "SELECT count() FROM silver.flights FORMAT CSV"),
    ("silver", "OPTIMIZE TABLE silver.flights FINAL"),
    ("silver", "SYSTEM DROP MARK CACHE"),
    ("silver", "SELECT 1; DROP TABLE silver.flights"),
    ("silver", "SELECT 1 /*"),
]


@pytest.mark.parametrize(("target", "statement"), HOSTILE)
def test_hostile_statement_is_refused_with_exit_2_and_changes_nothing(
    state, target: str, statement: str, caplog: pytest.LogCaptureFixture
) -> None:
    invoke, folder = state
    before = fingerprint(folder)
    with caplog.at_level(logging.WARNING):
        result = invoke("sql", "--target", target, statement)
    assert_one_line_error(result, 2, secrets_of(folder))
    assert fingerprint(folder) == before
    assert not Path(OUTFILE).exists() and not Path("/tmp/onering-test-query.db").exists()
    assert "Falling back" not in caplog.text + result.output


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT 1; COMMIT; DELETE FROM {GOLD} WHERE false",
        f"WITH d AS (DELETE FROM {GOLD} RETURNING 1) SELECT * FROM d",
        f"SELECT * INTO gold.stolen FROM {GOLD}",
        f"SELECT * INTO public.stolen FROM {GOLD}",
        f"EXPLAIN ANALYZE DELETE FROM {GOLD}",
        f"DELETE FROM {GOLD}",
        "CREATE TEMP TABLE planted (a int)",
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT lo_import('/etc/hostname')",
        "SELECT set_config('transaction_read_only', 'off', true)",
        "SELECT set_config('role', 'postgres', false)",
        f"COPY {GOLD} TO PROGRAM 'id'",
        "COPY (SELECT 1) TO '/tmp/onering-test-query-copy'",
        f"SELECT * FROM {GOLD} FOR UPDATE",
        f"SELECT query_to_xml('DELETE FROM {GOLD}', true, true, '')",
    ],
)
def test_gold_itself_refuses_when_the_gate_is_bypassed(state, statement: str) -> None:
    """The statement goes straight to Postgres as the reader: the server must refuse it."""
    _, folder = state
    before = fingerprint(folder)
    with pytest.raises(ReadOnlyError, match="Gold refused"):
        run_gold(reader(folder), statement)
    assert fingerprint(folder) == before
    assert not Path("/tmp/onering-test-query-copy").exists()


def test_gold_refuses_to_terminate_the_superusers_backend(state) -> None:
    _, folder = state
    with owner(folder).connect(autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        for function in ("pg_terminate_backend", "pg_cancel_backend"):
            with pytest.raises(ReadOnlyError, match="permission denied"):
                run_gold(reader(folder), f"SELECT {function}({int(row[0])})")
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:9/x.csv', 'CSV', 'a String')",
        "SELECT * FROM remote('127.0.0.1:9', system.one)",
        "SELECT * FROM s3('http://127.0.0.1:9/bucket/k.csv', 'CSV', 'a String')",
        "SELECT * FROM mysql('127.0.0.1:9', 'd', 't', 'u', 'p')",
        "SELECT * FROM executable('x.sh', 'CSV', 'a String')",
        "SELECT * FROM filesystem('/etc')",
        "SELECT 'x' UNION ALL SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "INSERT INTO silver.airlines SELECT * FROM silver.airlines",
        "DROP TABLE silver.flights",
        "SELECT 1 SETTINGS readonly = 0",
    ],
)
def test_silver_itself_refuses_when_the_gate_is_bypassed(state, statement: str) -> None:
    """chDB with readonly=1 refuses writes, settings and the file/network table functions."""
    _, folder = state
    before = fingerprint(folder)
    with pytest.raises(ReadOnlyError, match="Silver refused"):
        run_silver(silver(folder), statement)
    assert fingerprint(folder) == before


@pytest.mark.parametrize(
    ("target", "statement", "message"),
    [
        ("silver", "SELECT * FROM nonexistent", "UNKNOWN_TABLE"),
        ("silver", "SELECT no_such_function(1)", "UNKNOWN_FUNCTION"),
        ("gold", "SELECT * FROM gold.nonexistent", "does not exist"),
        ("gold", f"SELECT no_such_column FROM {GOLD}", "does not exist"),
        ("gold", "DESCRIBE gold.route_performance", "syntax error"),
    ],
)
def test_store_errors_exit_1_with_one_line(
    state, target: str, statement: str, message: str
) -> None:
    invoke, folder = state
    result = invoke("sql", "--target", target, statement)
    assert_one_line_error(result, 1, secrets_of(folder))
    assert message in result.stderr


@pytest.mark.parametrize(
    ("target", "statement"),
    [
        ("gold", f"-- the carriers\nSELECT carrier FROM {GOLD} WHERE carrier = 'UA'"),
        ("gold", f"(SELECT carrier FROM {GOLD} WHERE carrier = 'UA')"),
        ("gold", f"select*from {GOLD} where carrier = 'UA';"),
        ("gold", f"WITH c AS (SELECT carrier FROM {GOLD}) SELECT * FROM c WHERE carrier = 'UA'"),
        ("gold", f"SELECT carrier FROM {GOLD} WHERE carrier LIKE '%UA%'"),
        ("gold", f"EXPLAIN ANALYZE SELECT carrier FROM {GOLD} WHERE carrier = 'UA'"),
        ("gold", "SHOW transaction_read_only"),
        ("silver", "/* leading */ SELECT carrier FROM silver.airlines WHERE carrier = 'UA'"),
        ("silver", "(SELECT carrier FROM silver.airlines WHERE carrier = 'UA')"),
        ("silver", "SELECT*FROM silver.airlines WHERE carrier = 'UA';"),
        ("silver", "with c as (select carrier from silver.airlines) select * from c"),
        ("silver", "SELECT number AS UA FROM numbers(1)"),
        ("silver", "SHOW TABLES FROM silver"),
        ("silver", "DESCRIBE TABLE silver.airlines"),
        ("silver", "EXPLAIN SELECT carrier FROM silver.airlines WHERE carrier = 'UA'"),
    ],
)
def test_valid_reads_pass(
    state, target: str, statement: str, caplog: pytest.LogCaptureFixture
) -> None:
    invoke, _ = state
    with caplog.at_level(logging.WARNING):
        result = invoke("sql", "--target", target, "--format", "csv", statement)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "UA" in result.stdout or "on" in result.stdout or "airlines" in result.stdout
    assert "Falling back" not in caplog.text


def test_gold_runs_as_the_reader_in_a_read_only_transaction(state) -> None:
    invoke, _ = state
    result = invoke(
        "sql", "--format", "csv", "SELECT current_user, current_setting('transaction_read_only')"
    )
    assert result.stdout.splitlines()[1] == "onering_reader,on"


def test_unreachable_store_is_one_line_exit_1(tmp_path: Path) -> None:
    env = {
        "ONERING_PROFILE": "compose",
        "ONERING_STATE_DIR": str(tmp_path),
        "ONERING_POSTGRES_READER_DSN": "postgresql://onering_reader:hunter2@127.0.0.1:9/onering",
    }
    result = CliRunner().invoke(app, ["sql", "SELECT 1"], env=env, catch_exceptions=False)
    assert_one_line_error(result, 1, ("hunter2",))
    assert "Connection refused" in result.stderr or "connection" in result.stderr.lower()
    env.pop("ONERING_POSTGRES_READER_DSN")
    result = CliRunner().invoke(app, ["sql", "SELECT 1"], env=env, catch_exceptions=False)
    assert_one_line_error(result, 1, ())
    assert "ONERING_POSTGRES_READER_DSN" in result.stderr


def test_no_password_is_stored_or_printed_outside_the_secrets_file(state) -> None:
    """The Dagster run records, logs, chDB and the Postgres data hold no password."""
    _, folder = state
    secrets = [s.encode() for s in secrets_of(folder)]
    holder = (folder / "postgres-secrets.json").resolve()
    assert holder.stat().st_mode & 0o777 == 0o600
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.resolve() != holder:
            data = path.read_bytes()
            assert not any(s in data for s in secrets), path


def test_psycopg_errors_never_carry_the_password(state) -> None:
    _, folder = state
    conninfo = owner(folder).conninfo()
    secret = secrets_of(folder)[0]
    with pytest.raises(psycopg.Error) as caught:
        psycopg.connect(conninfo + " dbname=no_such_database")
    assert secret not in str(caught.value)


@pytest.mark.parametrize(
    "statement",
    [
        "SHOW ALL",
        "SHOW restore_command",
        "SELECT current_setting('archive_command')",
        "SELECT pg_catalog.current_setting('Restore_Command', true)",
        "SELECT current_setting(name) FROM pg_settings",
        "SELECT name, setting FROM pg_catalog.pg_settings",
    ],
)
def test_settings_that_may_hold_a_secret_are_refused(state, statement: str) -> None:
    """Commands (archive/restore) and connection strings are settings an operator may fill
    with a password; the reader may read them in Postgres 18, so the gate refuses."""
    invoke, folder = state
    result = invoke("sql", "--target", "gold", statement)
    assert_one_line_error(result, 2, secrets_of(folder))


@pytest.mark.parametrize(
    "setting",
    ["data_directory", "config_file", "hba_file", "ident_file", "primary_conninfo",
     "ssl_passphrase_command", "log_directory", "krb_server_keyfile"],
)  # fmt: skip
def test_gold_itself_hides_superuser_only_settings_from_the_reader(state, setting: str) -> None:
    """With the gate bypassed, Postgres refuses the reader what only pg_read_all_settings sees."""
    _, folder = state
    with pytest.raises(ReadOnlyError, match="permission denied to examine"):
        run_gold(reader(folder), f"SELECT current_setting('{setting}')")
    with owner(folder).connect() as conn:
        row = conn.execute(
            "SELECT pg_has_role('onering_reader', 'pg_read_all_settings', 'member')"
        ).fetchone()
    assert row == (False,)


def test_no_setting_the_reader_can_list_holds_a_password(state) -> None:
    """Every setting visible to the reader (read through pg_settings as the reader)."""
    _, folder = state
    _, rows = run_gold(reader(folder), "SELECT name, setting FROM pg_settings")
    assert len(rows) > 300
    text = repr(rows)
    for secret in secrets_of(folder):
        assert secret not in text


def test_silver_times_keep_their_zone_in_every_format(state) -> None:
    """A non-nullable ``DateTime('America/New_York')`` prints as local time with its offset.

    clickhouse-connect's chDB client returns such a column as a naive UTC datetime, which
    printed 13:28 EDT departures as 17:28.
    """
    invoke, folder = state
    zoned = (
        "SELECT toDateTime('2013-01-02 13:28:00', 'America/New_York') AS dep, "
        "toNullable(dep) AS maybe"
    )
    _, rows = run_silver(silver(folder), zoned)
    assert [d.isoformat() for d in rows[0]] == ["2013-01-02T13:28:00-05:00"] * 2
    flights = "SELECT sched_dep_at, sched_dep_time FROM silver.flights ORDER BY _row LIMIT 20"
    for line in invoke("sql", flights, "--format", "csv").stdout.strip().splitlines()[1:]:
        at, hhmm = line.split(",")
        assert at[11:16].replace(":", "") == hhmm.zfill(4) and at.endswith("-05:00"), line
