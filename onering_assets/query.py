"""`onering sql`: read-only queries against Silver (ClickHouse) or Gold (Postgres)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import sqlglot
from sqlglot import exp

from onering_assets.errors import ReadOnlyError

_READS = (exp.Select, exp.Union, exp.Describe, exp.Show)
_PREFIXES = ("select", "with", "show", "describe", "desc", "explain", "exists")


def ensure_read_only(statement: str, dialect: str) -> None:
    """Refuse anything but one read statement (checked here, and enforced by the store)."""
    text = statement.strip().rstrip(";")
    if not text:
        raise ReadOnlyError("Give a SELECT statement to run.")
    try:
        parsed = sqlglot.parse(text, dialect=dialect)
    except sqlglot.ParseError as err:
        raise ReadOnlyError(f"Cannot parse the statement: {str(err).splitlines()[0]}") from err
    if len(parsed) != 1:
        raise ReadOnlyError("Run one statement at a time.")
    tree = parsed[0]
    first = text.split(None, 1)[0].lower()
    if first not in _PREFIXES or (
        tree is not None
        and not isinstance(tree, _READS)
        and first not in ("explain", "exists", "show", "describe", "desc")
    ):
        raise ReadOnlyError(
            f"`onering sql` is read-only: {first.upper()} statements are refused. "
            "Change data through `onering materialize`."
        )


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    """Rows as CSV or JSON text (the table format is drawn by the CLI)."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue()
    return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2)
