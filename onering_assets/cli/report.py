"""What a run prints when it ends: the summary of `materialize`/`demo`, the table of `check`.

A run that failed says FAILED (or CANCELED) in its first line, lists what it did not get
to, and names each blocking check once; rejected rows come with their reasons and the
query that shows them.
"""

from __future__ import annotations

import json
import sys

from rich.table import Table

from onering_assets.cli.common import out
from onering_assets.settings import LAYER_ORDER
from onering_assets.summary import RunSummary


def _layered(keys) -> list[str]:
    return sorted(keys, key=lambda k: (LAYER_ORDER.get(k.split("/")[0], 9), k))


def verdict(summary: RunSummary) -> str:
    if summary.status == "CANCELED":
        return "[yellow]CANCELED[/yellow]"
    return "done" if summary.success else "[red]FAILED[/red]"


def print_rejects(summary: RunSummary) -> None:
    """Per asset with rejected rows: how many, why, and the query that shows them."""
    for key in _layered(k for k, n in summary.rejected.items() if n):
        reasons = summary.reject_reasons.get(key, {})
        why = ", ".join(f"{reason} {n:,}" for reason, n in reasons.items())
        out.print(
            f"  {key}: {summary.rejected[key]:,} rejected in all"
            + (f"; this run: {why}" if why else ""),
            highlight=False,
            soft_wrap=True,
        )
        query = summary.rejects_query.get(key)
        if query and reasons:
            out.print(f'    onering sql "{query}"', highlight=False, soft_wrap=True, markup=False)


DETAIL_LINES = 20  # of an error whose first line ends with ":" (it says what follows)


def print_errors(summary: RunSummary) -> None:
    """Steps that failed for another reason than their checks (listed already): a line each.

    Plus what a line ending with ":" announces (a OneRing message's fix). That includes
    errors a retry cannot fix (a corrupt lake file), which the summary counts
    as data problems with the failed checks.
    """
    for error in summary.failures:
        if "blocking check(s) failed" in error:
            continue
        first, *rest = error.splitlines()
        out.print(f"  [red]error[/red] {first}", highlight=False, soft_wrap=True)
        if first.endswith(":"):  # a message that goes on with what to do (e.g. the changeset)
            shown = rest[:DETAIL_LINES] + (["…"] if len(rest) > DETAIL_LINES else [])
            for line in shown:
                out.print(f"    {line}", highlight=False, soft_wrap=True, markup=False)


def print_summary(summary: RunSummary, title: str) -> None:
    """The run's outcome: verdict, rows per asset, rejects, failed checks, what was skipped."""
    out.print(
        f"{title}: {verdict(summary)} in {summary.seconds:.1f} s (run {summary.run_id})",
        highlight=False,
        soft_wrap=True,
    )
    if summary.rows:
        table = Table(title_justify="left")
        table.add_column("asset", no_wrap=True)
        table.add_column("rows", justify="right")
        table.add_column("rejected", justify="right")
        for key in _layered(summary.rows):
            rows, rejected = summary.rows[key], summary.rejected.get(key)
            table.add_row(
                key,
                f"{rows:,}" if isinstance(rows, int) else "-",
                f"{rejected:,}" if isinstance(rejected, int) else "",
            )
        out.print(table)
    if any(summary.rejected.values()):
        out.print("rejected rows (kept in silver.<table>_rejects):")
        print_rejects(summary)
    failed = [c for c in summary.checks if not c[2] and c[:2] not in summary.warned]
    warned = [c for c in summary.checks if not c[2] and c[:2] in summary.warned]
    out.print(
        f"checks: {summary.checks_passed} passed, {len(failed)} failed"
        + (f", {len(warned)} warned (non-blocking)" if warned else ""),
        highlight=False,
    )
    for asset, check, _, description in failed:
        out.print(
            f"  [red]failed[/red] {asset}:{check} — {description}",
            highlight=False,
            soft_wrap=True,
        )
    for asset, check, _, description in warned:
        out.print(
            f"  [yellow]warn[/yellow] {asset}:{check} — {description}",
            highlight=False,
            soft_wrap=True,
        )
    if summary.status == "CANCELED":
        out.print("  stopped by a signal; what was not published keeps its previous version")
    else:
        print_errors(summary)
    if summary.skipped:
        skipped = ", ".join(_layered(summary.skipped))
        out.print(
            f"not materialized (upstream failed or stopped): {skipped}",
            highlight=False,
            soft_wrap=True,
        )


def print_checks(summary: RunSummary, blocking: dict[tuple[str, str], bool]) -> None:
    """`onering check`: one line per check (asset, check, result, then its summary), a total.

    Plain aligned text, not a boxed table: at 80 columns or piped, a table squeezed the
    summaries into six-line cells; here only a long summary runs past the edge.
    """
    rows = []
    for asset, check, passed, description in sorted(
        summary.checks, key=lambda c: (LAYER_ORDER.get(c[0].split("/")[0], 9), c[0], c[1])
    ):
        if passed:
            result = "passed"
        elif blocking.get((asset, check), True):
            result = "FAILED"
        else:
            result = "warn"
        rows.append((asset, check, result, description))
    if rows:
        widths = [
            max(len(r[i]) for r in [("asset", "check", "result", ""), *rows]) for i in range(3)
        ]
        for row in [("asset", "check", "result", "summary"), *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
            line = "  ".join([*cells, row[3]])
            style = {"FAILED": "red", "warn": "yellow"}.get(row[2])
            out.print(line, style=style, highlight=False, markup=False, soft_wrap=True)
    failed = sum(1 for r in rows if r[2] == "FAILED")
    warned = sum(1 for r in rows if r[2] == "warn")
    out.print(
        f"checks: {'' if summary.success else verdict(summary) + ' '}"
        f"{summary.checks_passed} passed, {failed} failed"
        + (f", {warned} warned" if warned else "")
        + f" in {summary.seconds:.1f} s "
        f"(run {summary.run_id})",
        highlight=False,
        soft_wrap=True,
    )
    print_errors(summary)


def report(summary: RunSummary, defs, title: str, as_json: bool) -> None:
    """The run summary as a table, or as one line of JSON for scripts and Airflow."""
    from onering_assets.runner import blocking_by_check

    blocking = blocking_by_check(defs)
    if as_json:
        sys.stdout.write(json.dumps(summary.to_dict(blocking), default=str) + "\n")
    elif title == "checks":
        print_checks(summary, blocking)
    else:
        print_summary(summary, title)
