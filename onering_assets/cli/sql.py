"""`onering sql`: one read-only query against Silver or Gold.

Exit codes: 0 rows printed (or the reader went away: ``| head``); 2 the statement was
refused (it writes, holds several statements, reaches outside the store, cannot be read,
is empty, or names no store or both) or the options are wrong; 1 the store could not run it
(unknown table, the store's own syntax error, no connection, a limit hit, nothing built
yet). Every error is one line on stderr; no traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from onering_assets.cli.common import app, fail
from onering_assets.errors import OneRingError, ReadOnlyError
from onering_assets.settings import Settings

TABLE_ROWS = 1000  # the table format's default --limit

HELP = """Run one read-only statement against Silver (ClickHouse) or Gold (Postgres).

\b
Target: without --target, a statement naming silver.… tables runs on Silver and one
naming gold.… tables on Gold; one that reads no table (SELECT 1) runs on Gold; naming
both, or tables of neither (SHOW TABLES, information_schema…), needs --target.
Unqualified names resolve in the target's schema (silver or gold).

\b
Formats (stdout):
  table  aligned text; at most --limit rows (default 1,000) and a footer such as
         "showing 1,000 of 336,776 rows; --limit 0 for all"; floats rounded to 4
         decimals, NULL shown as NULL, long values cut at 40 characters.
  csv    a header line, then every row (--limit 0 by default); NULL is empty.
  json   one JSON array, one object per row per line (every row by default); NaN and
         Infinity are null, bytes are hex strings, dates, times and decimals strings.

\b
Limits: each query may run ONERING_SQL_TIMEOUT seconds (default 60) and use
ONERING_SQL_MAX_MEMORY (default 2G); 0 lifts a limit. Rows are spooled (16 MB in
memory, then a temporary file) and the store released before anything is printed, so a
slow reader (| less) holds no store; | head ends quietly.

\b
Exit codes: 0 printed; 2 refused (a write, several statements, a file or network
function, an empty statement, no store named) or bad options; 1 the store failed
(unknown table, a limit hit, nothing materialized yet). Errors are one line on stderr.
"""


# A statement may start with a `-- comment`, which click would otherwise take for an option.
@app.command(context_settings={"ignore_unknown_options": True}, help=HELP)
def sql(
    statement: Annotated[
        str | None, typer.Argument(help="One read-only statement.", show_default=False)
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="silver (ClickHouse) or gold (Postgres); default: from the statement."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    limit: Annotated[
        int | None,
        typer.Option(help="Print at most N rows; 0 for all. Default: 1,000 for table, all else."),
    ] = None,
) -> None:
    if target not in (None, "silver", "gold") or fmt not in ("table", "csv", "json"):
        raise fail("--target is silver or gold; --format is table, csv or json.", 2)
    if limit is not None and limit < 0:
        raise fail("--limit is a number of rows, 0 for all.", 2)
    if not statement or not statement.strip():
        raise fail('Give a statement to run, e.g. onering sql "SELECT 1".', 2)
    spool = _run(statement, target, fmt, TABLE_ROWS if limit is None and fmt == "table" else limit)
    from onering_assets.sqlout import write

    try:
        write(spool, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        _silence_stdout()
    except OSError as e:  # a full disk behind `> file`
        raise fail(f"Cannot write the output: {e.strerror or e}", 1) from None
    finally:
        spool.close()


def _run(statement: str, target: str | None, fmt: str, limit: int | None):
    """The statement's rows, spooled; the store is closed again when this returns."""
    from onering_assets.query import Limits, one_line, run_query
    from onering_assets.sqlcheck import detect_target
    from onering_assets.sqlout import TEXT_FORMATS

    try:
        settings = Settings.from_env()
        target = target or detect_target(statement)
        missing = _nothing_built(settings, target)
        if missing:
            raise fail(missing, 1)
        from onering_assets.definitions import resources_for

        return run_query(
            resources_for(settings),
            target,
            statement,
            limit=limit or 0,
            limits=Limits(settings.sql_timeout_s, settings.sql_max_memory),
            text=TEXT_FORMATS[fmt]() if fmt in TEXT_FORMATS else None,
        )
    except ReadOnlyError as e:
        raise fail(one_line(str(e)), 2) from None
    except OneRingError as e:
        raise fail(one_line(str(e)), 1) from None
    except typer.Exit:
        raise
    except Exception as e:  # a store's unexpected error is one line too, never a traceback
        raise fail(one_line(f"{type(e).__name__}: {e}"), 1) from None


def _nothing_built(settings: Settings, target: str) -> str | None:
    """Why a local state folder has no store to query yet (opening one would create it)."""
    if settings.profile != "local":
        return None
    store, other = settings.clickhouse_dir, settings.postgres_dir
    if target == "gold":
        store, other = other, store
    if store.exists():
        return None
    what = f"{target.capitalize()} has not" if other.exists() else "Nothing has"
    return (
        f"{what} been materialized in {settings.state_dir} yet: run `make demo` "
        "(everything) or `onering materialize` first."
    )


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the final flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (tests)
        pass
