"""`onering sql`: one read-only query against Silver or Gold.

Exit codes: 0 rows printed; 2 the statement was refused (it writes, holds several
statements, reaches outside the store, or cannot be read) or the options are wrong; 1 the
store could not run it (unknown table, the store's own syntax error, no connection). Every
error is one line on stderr; no traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from onering_assets.cli.common import app, fail, out
from onering_assets.errors import OneRingError, ReadOnlyError
from onering_assets.settings import Settings

# Drawing a rich table is slow and unreadable past a screenful; csv/json print everything.
TABLE_ROWS = 1000


# A statement may start with a `-- comment`, which click would otherwise take for an option.
@app.command(context_settings={"ignore_unknown_options": True})
def sql(
    statement: Annotated[str, typer.Argument(help="One read-only statement.")],
    target: Annotated[str, typer.Option(help="silver (ClickHouse) or gold (Postgres).")] = "gold",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run a read-only query against Silver or Gold (exit 2 if refused, 1 if it fails)."""
    from onering_assets.query import one_line, render, run_query

    if target not in ("silver", "gold") or fmt not in ("table", "csv", "json"):
        raise fail("--target is silver or gold; --format is table, csv or json.", 2)
    try:
        from onering_assets.definitions import resources_for

        columns, rows = run_query(resources_for(Settings.from_env()), target, statement)
    except ReadOnlyError as e:
        raise fail(one_line(str(e)), 2) from None
    except OneRingError as e:
        raise fail(one_line(str(e)), 1) from None
    except Exception as e:  # a store's unexpected error is one line too, never a traceback
        raise fail(one_line(f"{type(e).__name__}: {e}"), 1) from None
    if fmt != "table":
        sys.stdout.write(render(columns, rows, fmt))
        return
    table = Table(*columns)
    for row in rows[:TABLE_ROWS]:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)
    if len(rows) > TABLE_ROWS:
        out.print(f"showing {TABLE_ROWS:,} of {len(rows):,} rows; use --format csv or json for all")
