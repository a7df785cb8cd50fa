"""`onering lineage show|document`: the lineage document in the terminal and as a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from onering_assets.cli.common import app, fail, load, out, refuse
from onering_assets.errors import OneRingError

lineage_app = typer.Typer(help="Table and column lineage of the asset graph.", no_args_is_help=True)
app.add_typer(lineage_app, name="lineage")


def _document(with_runs: bool = False):
    """The lineage document of the definitions (and every recorded run)."""
    from onering_assets.lineage.airflow import airflow_dags
    from onering_assets.lineage.document import build_document
    from onering_assets.lineage.runs import run_records

    _, defs, instance = load()
    runs = run_records(instance) if with_runs else ()
    return defs, build_document(defs, dags=airflow_dags(defs), runs=runs)


@lineage_app.command("show")
def lineage_show(
    key: Annotated[str, typer.Argument(help="Asset key, e.g. gold/carrier_monthly.")],
    columns: Annotated[
        bool, typer.Option("--columns", help="Print each edge's column lineage (to ← from).")
    ] = False,
    column: Annotated[
        str | None, typer.Option("--column", "-c", help="Trace one column of the asset.")
    ] = None,
    upstream: Annotated[
        bool, typer.Option("--upstream", help="Only what the asset is computed from.")
    ] = False,
    downstream: Annotated[
        bool, typer.Option("--downstream", help="Only what is computed from the asset.")
    ] = False,
) -> None:
    """The asset's upstream and downstream tables as a tree, with column lineage on request.

    Exit 3, with close matches, when no asset has that key; 2 for an unknown column.
    """
    from onering_assets.browse import parse_key
    from onering_assets.lineage.document import column_names
    from onering_assets.lineage.show import lineage_lines

    if upstream and downstream:
        raise fail("--upstream and --downstream exclude each other; omit both for both.", 2)
    try:
        defs, document = _document()
        asset = parse_key(defs, key).to_user_string()
    except OneRingError as e:
        raise refuse(e) from None
    direction = "upstream" if upstream else "downstream" if downstream else "both"
    try:
        lines = lineage_lines(
            document, asset, direction=direction, with_columns=columns, column=column
        )
    except KeyError:
        entity = next(e for e in document["entities"] if e["key"] == asset)
        names = ", ".join(column_names(entity))
        raise fail(f"{asset} has no column {column!r}; its columns: {names}.", 2) from None
    for line in lines:
        out.print(line, highlight=False, markup=False, no_wrap=True, crop=False, soft_wrap=True)


@lineage_app.command("document")
def lineage_document(
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
    ] = None,
    runs: Annotated[
        bool, typer.Option("--runs", help="Include every run recorded in the Dagster instance.")
    ] = False,
) -> None:
    """The lineage document (versioned JSON) that the catalog publishers read."""
    from onering_assets.lineage.document import dumps
    from onering_assets.lineage.publish import plural

    try:
        _, document = _document(with_runs=runs)
    except OneRingError as e:
        raise refuse(e) from None
    text = dumps(document)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        out.print(
            f"wrote {output}: {plural(len(document['entities']), 'entity', 'entities')}, "
            f"{plural(len(document['edges']), 'edge')}, {plural(len(document['runs']), 'run')}",
            highlight=False,
        )
