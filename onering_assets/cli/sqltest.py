"""`onering test`: the SQL unit tests declared beside Silver and Gold tables."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from onering_assets.cli.common import Select, app, err, fail, out, refuse
from onering_assets.errors import ConfigError, NothingSelectedError, OneRingError

if TYPE_CHECKING:
    import psycopg

    from onering_assets.sqltests.run import Outcome

HELP = """Run the SQL unit tests declared beside Silver and Gold tables (<table>.test.yml).

\b
Each test gives rows for the tables the SQL reads and the rows it must produce; the
table is built from them by the code a materialization runs, on a scratch chDB (Silver:
staging, de-duplication and rejects; Gold: the mart's SELECT), and a Gold mart's rows are
also loaded into a temporary table shaped like the mart in Postgres and read back from
there (--no-postgres skips that). Nothing is written to Silver or Gold.

\b
Exit codes: 0 every test passed; 1 a test failed (its differing rows are printed) or
could not run (ERROR: the engine's message, e.g. an unknown column in the SQL or a given
value of the wrong type); 2 a test file, the selection or --create's options are invalid;
3 the selection picks no table with tests.

\b
--create KEY --where COND: write a test of KEY from live data, to review (see README).
"""


@app.command("test", help=HELP)
def test(
    select: Select = None,
    postgres: Annotated[
        bool, typer.Option("--postgres/--no-postgres", help="Also load Gold marts in Postgres.")
    ] = True,
    create: Annotated[
        str | None,
        typer.Option(
            "--create",
            metavar="KEY",
            help="Write a test of KEY (e.g. gold/route_performance) from live data.",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            metavar="COND",
            help="With --create: which upstream rows, COND or 'silver.weather: COND' (repeatable).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="With --create: the test's name.")] = None,
    limit: Annotated[int, typer.Option(help="With --create: rows per upstream table.")] = 20,
) -> None:
    if create is not None:
        _create(create, where or [], name, limit)
        return
    if where or name:
        raise fail("--where and --name go with --create KEY.", 2)
    from onering_assets.catalog import load_catalog
    from onering_assets.sqltests.run import run_tests, scratch_clickhouse
    from onering_assets.sqltests.spec import load_tests

    try:
        tables = _selected(select)
        catalog = load_catalog()
        tests = [t for table in tables for t in load_tests(catalog, table)]
        if not tests:
            raise NothingSelectedError(
                "No unit tests for the selected assets: Silver and Gold tables declare them in "
                "<table>.test.yml beside the table's SQL (see README, 'SQL unit tests')."
            )
    except OneRingError as e:
        raise refuse(e) from None
    failed = 0
    with (
        tempfile.TemporaryDirectory(prefix="onering-test-") as scratch,
        scratch_clickhouse(Path(scratch)) as client,
        _postgres(postgres, tests) as pg,
    ):
        for outcome in run_tests(tests, catalog, client, pg):
            failed += not _report(outcome)
    passed = len(tests) - failed
    summary = f"{passed} passed, {failed} failed"
    (err if failed else out).print(summary, highlight=False)
    if failed:
        raise typer.Exit(1)


def _report(outcome: Outcome) -> bool:
    """Print a test's PASS, FAIL (with the rows that differ) or ERROR; return whether it passed."""
    engines = ", ".join(outcome.engines)
    if outcome.passed:
        out.print(f"PASS {outcome.test.title} ({engines})", highlight=False, soft_wrap=True)
        return True
    if outcome.error is not None:
        out.print(f"ERROR {outcome.test.title}", highlight=False, soft_wrap=True)
        out.print(f"  in {outcome.test.path}", highlight=False, soft_wrap=True)
        out.print(f"  {outcome.error}", highlight=False, soft_wrap=True, markup=False)
        return False
    out.print(f"FAIL {outcome.test.title} ({engines})", highlight=False, soft_wrap=True)
    out.print(f"  in {outcome.test.path}", highlight=False, soft_wrap=True)
    for mismatch in outcome.mismatches:
        for line in mismatch.lines():
            out.print(line, highlight=False, soft_wrap=True, markup=False)
    return False


def _selected(select: str | None) -> list:
    """The declared Silver and Gold tables the selection picks (all without one)."""
    from onering_assets.catalog import load_catalog

    catalog = load_catalog()
    tables = [*catalog.silver, *catalog.gold]
    if not select:
        return tables
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import resolve_selection
    from onering_assets.settings import Settings

    # The graph only: no Dagster instance is opened (nothing is run or recorded).
    defs = build_definitions(Settings.from_env())
    keys = {"/".join(k.path) for k in resolve_selection(defs, select)}
    return [t for t in tables if f"{t.layer}/{t.name}" in keys]


@contextmanager
def _postgres(wanted: bool, tests: list) -> Iterator[psycopg.Connection | None]:
    """A connection to the project's Gold Postgres when a Gold test needs one, else None."""
    if not wanted or not any(t.table.layer == "gold" for t in tests):
        yield None
        return
    from onering_assets.definitions import resources_for
    from onering_assets.settings import Settings

    err.print("Gold marts are also loaded in Postgres (--no-postgres to skip).", highlight=False)
    # The profile's Gold store, as a run resolves it (the compose profile's EnvVar DSN).
    stores = resources_for(Settings.from_env())
    with stores["postgres"].process_config_and_initialize_cm() as pg, pg.connect() as conn:
        yield conn


def _create(key: str, wheres: list[str], name: str | None, limit: int) -> None:
    """Write a test of ``key`` from live data (``onering_assets.sqltests.create``)."""
    from onering_assets.catalog import load_catalog
    from onering_assets.definitions import resources_for
    from onering_assets.settings import Settings
    from onering_assets.silver.steps import bronze_structure, published_partitions
    from onering_assets.sqltests import create
    from onering_assets.sqltests.run import scratch_clickhouse

    if limit < 1:
        raise fail("--limit is a number of rows per upstream table, at least 1.", 2)
    layer, _, table_name = key.partition("/")
    try:
        catalog = load_catalog()
        if layer not in ("silver", "gold"):
            raise ConfigError(f"--create {key!r}: a Silver or Gold table, e.g. silver/airlines.")
        table = catalog.sql_table(layer, table_name)
        filters = [create.parse_filter(w, table, catalog) for w in wheres]
        settings = Settings.from_env()
        if layer == "gold" and settings.profile == "local" and not settings.clickhouse_dir.exists():
            raise ConfigError(
                f"Silver is not built yet in {settings.state_dir}: materialize the tables "
                f"{key} reads first, e.g. onering materialize --select '+key:\"{key}\"'."
            )
        stores = resources_for(settings)
        # EnvVar fields (the compose profile) resolved as a run resolves them; chDB holds one
        # data folder per process, so Silver is read and closed before the scratch opens.
        with stores["lake"].process_config_and_initialize_cm() as lake:
            given = {}
            if layer == "gold":
                with stores["clickhouse"].process_config_and_initialize_cm() as clickhouse:
                    given = create.given_rows(
                        clickhouse.get_client(), catalog, table, _silver, filters, limit
                    )
            with (
                tempfile.TemporaryDirectory(prefix="onering-test-") as scratch,
                scratch_clickhouse(Path(scratch)) as client,
            ):
                if layer == "silver":

                    def bronze(_layer: str, name: str) -> tuple[str, dict[str, str]]:
                        months = published_partitions(table, lake) if table.partitioned else None
                        if table.partitioned and not months:
                            raise OneRingError(f"bronze.{name} has no landed month to read.")
                        return lake.clickhouse_source(
                            "bronze", name, months, bronze_structure(name)
                        )

                    given = create.given_rows(client, catalog, table, bronze, filters, limit)
                rows, rejects = create.produced(client, catalog, table, given)
        title = name or ("from live data: " + " and ".join(wheres) if wheres else "from live data")
        path = create.append_test(table, catalog, title, given, rows, rejects)
    except OneRingError as e:
        raise refuse(e) from None
    counts = ", ".join(f"{len(v)} {'.'.join(k)}" for k, v in given.items())
    out.print(
        f"Wrote test {title!r} to {path}: given {counts}; expects {len(rows)} row(s)"
        + (f" and {len(rejects)} reject(s)" if rejects is not None else "")
        + ". Review the expected rows: they are what the SQL produces today.",
        highlight=False,
        soft_wrap=True,
    )


def _silver(layer: str, name: str) -> tuple[str, dict[str, str]]:
    """A published Silver table, as a Gold mart's test reads it."""
    return f"{layer}.`{name}`", {}
