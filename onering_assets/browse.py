"""What `onering assets` shows: the graph, its metadata, and the latest results.

The latest results come from the Dagster instance's event log (``onering_assets.history``),
never from the stores, so browsing stays cheap and works while a run holds them.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from rich.console import Console
from rich.table import Table
from rich.text import Text

from onering_assets.errors import NothingSelectedError
from onering_assets.history import Evaluation, Materialized, evaluations, materializations
from onering_assets.settings import LAYER_ORDER

LIST_HEADERS = ("asset", "partitions", "rows", "checks", "materialized")
# Narrower than this, `assets list` leaves the description out rather than show a stub.
MIN_DESCRIPTION = 16


def _sort_key(key: dg.AssetKey) -> tuple[int, str]:
    return LAYER_ORDER.get(key.path[0], 9), key.to_user_string()


def absolute(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(timestamp: float, now: float | None = None) -> str:
    """How long ago, in the largest whole unit: ``45 s ago``, ``12 min ago``, ``3 days ago``."""
    seconds = max(0, int((time.time() if now is None else now) - timestamp))
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if unit == 'day' and count > 1 else ''} ago"
    return f"{seconds} s ago"


def when(timestamp: float) -> str:
    return f"{ago(timestamp)} ({absolute(timestamp)})"


@dataclass(frozen=True)
class AssetInfo:
    """One asset as `assets list` shows it."""

    key: dg.AssetKey
    group: str
    kind: str
    partitioned: bool
    checks: int
    checks_failed: int
    checks_never_run: int
    description: str
    state: Materialized

    @property
    def checks_cell(self) -> str:
        problems = [
            f"{n} {what}"
            for n, what in ((self.checks_failed, "failed"), (self.checks_never_run, "never run"))
            if n
        ]
        return ", ".join([str(self.checks), *problems])

    def to_json(self) -> dict[str, Any]:
        when_ = self.state.when
        return {
            "key": self.key.to_user_string(),
            "layer": self.key.path[0],
            "kind": self.kind,
            "partitioned": self.partitioned,
            "group": self.group,
            "checks": self.checks,
            "checks_failed": self.checks_failed,
            "checks_never_run": self.checks_never_run,
            "rows": self.state.rows,
            "partitions": self.state.coverage,
            "last_materialized": (
                datetime.fromtimestamp(when_, UTC).isoformat(timespec="seconds")
                if when_ is not None
                else None
            ),
            "run_id": self.state.run_id,
            "description": self.description,
        }


def _check_keys(graph: Any, key: dg.AssetKey) -> list[dg.AssetCheckKey]:
    return sorted((ck for ck in graph.asset_check_keys if ck.asset_key == key), key=str)


def asset_infos(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]
) -> list[AssetInfo]:
    graph = defs.resolve_asset_graph()
    ordered = sorted(keys, key=_sort_key)
    states = materializations(instance, graph, ordered)
    checks = {key: _check_keys(graph, key) for key in ordered}
    latest = evaluations(instance, [ck for cks in checks.values() for ck in cks])
    infos = []
    for key in ordered:
        node = graph.get(key)
        found = [latest[ck] for ck in checks[key] if ck in latest]
        infos.append(
            AssetInfo(
                key=key,
                group=node.group_name or "",
                kind=", ".join(sorted(node.kinds)),
                partitioned=node.partitions_def is not None,
                checks=len(checks[key]),
                checks_failed=sum(not e.passed for e in found),
                checks_never_run=len(checks[key]) - len(found),
                description=(node.description or "").split(". ")[0].strip(),
                state=states[key],
            )
        )
    return infos


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def list_lines(infos: list[AssetInfo], width: int) -> list[Text]:
    """The list as aligned lines that never break a cell (the header bold).

    Every column is as wide as its longest cell; the description takes what is left of
    ``width`` (cut with "…"), or is left out when too little is left. A terminal narrower
    than the other columns gets longer lines, never a key cut in two.
    """
    rows = [
        [
            i.key.to_user_string(),
            i.state.coverage or "-",
            f"{i.state.rows:,}" if i.state.rows is not None else "-",
            i.checks_cell,
            ago(i.state.when) if i.state.when is not None else "never",
        ]
        for i in infos
    ]
    widths = [max([len(h), *(len(r[n]) for r in rows)]) for n, h in enumerate(LIST_HEADERS)]
    room = width - sum(widths) - 2 * len(widths)
    header: list[str] = list(LIST_HEADERS)
    if room >= MIN_DESCRIPTION:
        header.append("description")
        for info, row in zip(infos, rows, strict=True):
            row.append(_fit(info.description, room))
    right = LIST_HEADERS.index("rows")

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(widths[n]) if n == right else c.ljust(widths[n]) if n < len(widths) else c
            for n, c in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    return [Text(line(header), style="bold"), *(Text(line(r)) for r in rows)]


def _suggest(text: str, known: list[str]) -> list[str]:
    name = text.split("/")[-1]
    same_name = [k for k in known if k.split("/")[-1] == name]
    close = difflib.get_close_matches(text, known, n=3, cutoff=0.8)
    part = [k for k in known if len(text) >= 3 and text in k]
    return list(dict.fromkeys([*same_name, *close, *part]))[:3]


def parse_key(defs: dg.Definitions, text: str) -> dg.AssetKey:
    """The asset ``text`` names (``gold/x``, ``key:"gold/x"``); one line with suggestions if none.

    Raises:
        NothingSelectedError: no asset has that key (the CLI exits 3, as for a selection).
    """
    cleaned = text.strip().removeprefix("key:").strip().strip('"')
    known = {k.to_user_string(): k for k in defs.resolve_asset_graph().materializable_asset_keys}
    if cleaned in known:
        return known[cleaned]
    close = _suggest(cleaned, sorted(known))
    hint = f"did you mean {' or '.join(close)}? See" if close else "see"
    raise NothingSelectedError(f"No asset {text!r}; {hint} `onering assets list` for the keys.")


def _columns_table(schema: dg.TableSchema, lineage: dg.TableColumnLineage | None) -> Table:
    table = Table(title="columns", title_justify="left")
    table.add_column("column", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("description", overflow="fold")
    table.add_column("computed from", overflow="fold")  # wrapped, never cut
    deps = lineage.deps_by_column if lineage else {}
    for column in schema.columns:
        sources = "\n".join(  # one source per line: wrapped, never cut
            f"{d.asset_key.to_user_string()}.{d.column_name}" for d in deps.get(column.name, [])
        )
        # The UI-facing description ends with "← sources" (metadata.py); shown once here.
        described = (column.description or "").split(" ← ")[0]
        table.add_row(column.name, column.type, described, sources)
    return table


def materialized_line(state: Materialized) -> str:
    """``materialized: 336,776 rows; 12/12 partitions; 12 min ago (…) by run 1a2b3c4d``."""
    if state.when is None:
        return "materialized: never" + (
            f" (0/{state.partitions} partitions)" if state.partitions else ""
        )
    parts = [f"{state.rows:,} rows" if state.rows is not None else "rows not recorded"]
    if state.coverage is not None:
        missing = ", ".join(state.missing[:6]) + (", …" if len(state.missing) > 6 else "")
        parts.append(f"{state.coverage} partitions" + (f" (missing {missing})" if missing else ""))
    parts.append(f"{when(state.when)} by run {(state.run_id or '?')[:8]}")
    return "materialized: " + "; ".join(parts)


def check_lines(
    specs: list[dg.AssetCheckSpec], latest: Mapping[dg.AssetCheckKey, Evaluation]
) -> list[Text]:
    """Two lines a check: name, blocking, latest result and when; then the result's summary."""
    width = max([len(s.name) for s in specs] + [5])
    lines = []
    for spec in specs:
        found = latest.get(spec.key)
        line = Text(f"  {spec.name:<{width}}  {'blocking' if spec.blocking else 'warns':<8}  ")
        if found is None:
            line.append("never run", style="yellow")
        else:
            status = "passed" if found.passed else "failed"
            line.append(status, style="green" if found.passed else "red")
            line.append(f"  {when(found.when)}")
        lines.append(line)
        if found is not None and found.summary:
            lines.append(Text(f"      {found.summary}"))
    return lines


# Metadata shown elsewhere (the header, the columns table) or too long for a line.
NOT_DETAILS = {"sql", "database", "schema", "table", "method"}


def stored_at(metadata: Mapping[str, Any]) -> str:
    """Where the asset lives: its table, lake path, registered model or feature view."""
    if table := metadata.get("dagster/table_name"):
        return f"table={table}"
    if model := metadata.get("registered_model"):
        return f"mlflow={model}@{metadata.get('alias', 'champion')}"
    if metadata.get("database") == "feast":
        return f"feast={metadata.get('schema')}/{metadata.get('table')}"
    if path := metadata.get("lake_path"):
        return f"lake={path}"
    return "table=-"


def details(metadata: Mapping[str, Any], width: int = 100) -> list[tuple[str, str]]:
    """The asset's own declared metadata (not Dagster's), each ``name: value`` in ``width``."""
    out = []
    for name, value in metadata.items():
        if name.startswith("dagster/") or name in NOT_DETAILS:
            continue
        value = getattr(value, "value", value)
        if isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value):
            value = [v["name"] for v in value]  # e.g. the model's inputs
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        room = max(width - len(name) - 2, 20)
        out.append((name, text if len(text) <= room else text[: room - 1] + "…"))
    return out


def show_asset(
    console: Console, defs: dg.Definitions, instance: dg.DagsterInstance, text: str
) -> None:
    key = parse_key(defs, text)
    graph = defs.resolve_asset_graph()
    node = graph.get(key)
    metadata: Mapping[str, Any] = node.metadata
    console.print(
        f"[bold]{key.to_user_string()}[/bold]  group={node.group_name}  "
        f"kind={', '.join(sorted(node.kinds))}  {stored_at(metadata)}",
        highlight=False,
        soft_wrap=True,  # one line, whatever the width: the key and its store stay together
    )
    console.print(node.description or "", highlight=False, markup=False)
    for name, value in details(metadata, console.width):
        console.print(f"{name}: {value}", highlight=False, markup=False)
    console.print(
        f"owners: {', '.join(node.owners) or '-'}   tags: "
        f"{', '.join(f'{k}={v}' for k, v in node.tags.items() if not k.startswith('dagster/'))}",
        highlight=False,
    )
    parts = node.partitions_def
    keys = list(parts.get_partition_keys()) if parts else []
    console.print(
        f"partitions: {keys[0]} … {keys[-1]} ({len(keys)})" if keys else "partitions: none",
        highlight=False,
    )
    console.print(
        "upstream: " + (", ".join(sorted(p.to_user_string() for p in node.parent_keys)) or "-")
    )
    console.print(
        "downstream: " + (", ".join(sorted(c.to_user_string() for c in node.child_keys)) or "-")
    )
    state = materializations(instance, graph, [key])[key]
    console.print(materialized_line(state), highlight=False, markup=False)
    schema = metadata.get("dagster/column_schema")
    if isinstance(schema, dg.TableSchemaMetadataValue):
        schema = schema.schema
    lineage = metadata.get("dagster/column_lineage")
    if isinstance(lineage, dg.TableColumnLineageMetadataValue):
        lineage = lineage.column_lineage
    if isinstance(schema, dg.TableSchema):
        console.print(
            _columns_table(schema, lineage if isinstance(lineage, dg.TableColumnLineage) else None)
        )
    specs = [s for s in defs.resolve_assets_def(key).check_specs if s.asset_key == key]
    console.print("checks (latest evaluation):")
    for line in check_lines(specs, evaluations(instance, [s.key for s in specs])):
        console.print(line, highlight=False)
