"""Grafana dashboards as code (grafana-foundation-sdk), written as provisioning JSON.

Regenerate with ``python -m onering_assets.observability.dashboards``; a test fails when
the committed files under ``platform/observability/grafana/dashboards/`` are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

from onering_assets.observability.panels import (
    CLICKHOUSE,
    PIPELINE,
    PROMETHEUS,
    STORES,
    PromPanel,
    SqlPanel,
)

FOLDER = Path(__file__).resolve().parents[2] / "platform/observability/grafana/dashboards"
PLUGINS = {
    PROMETHEUS: "prometheus",
    CLICKHOUSE: "grafana-clickhouse-datasource",
}
POSTGRES = "grafana-postgresql-datasource"
WIDTH, HEIGHT = 12, 8


def source(uid: str) -> DataSourceRef:
    return DataSourceRef(type_val=PLUGINS.get(uid, POSTGRES), uid=uid)


class SqlQuery(Dataquery):
    """A raw SQL target; the SDK has no builder for the ClickHouse or Postgres plugins."""

    def __init__(self, panel: SqlPanel) -> None:
        self.panel = panel

    def to_json(self) -> dict[str, Any]:
        ref = {"type": PLUGINS.get(self.panel.datasource, POSTGRES), "uid": self.panel.datasource}
        query: dict[str, Any] = {"refId": "A", "datasource": ref, "rawSql": self.panel.sql}
        if self.panel.datasource == CLICKHOUSE:
            return query | {"editorType": "sql", "queryType": "table", "format": 1}
        return query | {"editorMode": "code", "rawQuery": True, "format": "table"}


class SqlTarget:
    def __init__(self, panel: SqlPanel) -> None:
        self.panel = panel

    def build(self) -> SqlQuery:
        return SqlQuery(self.panel)


def _position(index: int) -> GridPos:
    return GridPos(h=HEIGHT, w=WIDTH, x=(index % 2) * WIDTH, y=(index // 2) * HEIGHT)


def prom_panel(panel: PromPanel, index: int) -> Any:
    builder = {"stat": stat.Panel, "table": table.Panel, "timeseries": timeseries.Panel}
    target = prometheus.Dataquery().expr(panel.expr).legend_format(panel.legend).ref_id("A")
    target = target.range() if panel.kind == "timeseries" else target.instant()
    return (
        builder[panel.kind]()
        .title(panel.title)
        .description(panel.description)
        .datasource(source(PROMETHEUS))
        .unit(panel.unit)
        .grid_pos(_position(index))
        .with_target(target)
    )


def sql_panel(panel: SqlPanel, index: int) -> Any:
    return (
        table.Panel()
        .title(panel.title)
        .description(panel.description)
        .datasource(source(panel.datasource))
        .grid_pos(_position(index))
        .with_target(SqlTarget(panel))  # type: ignore[arg-type]  # duck-typed Builder
    )


def pipeline() -> dict[str, Any]:
    board = (
        dashboard.Dashboard("OneRing pipeline")
        .uid("onering-pipeline")
        .tags(["onering"])
        .refresh("1m")
        .time("now-24h", "now")
    )
    for i, panel in enumerate(PIPELINE):
        board = board.with_panel(prom_panel(panel, i))
    return _json(board.build())


def stores() -> dict[str, Any]:
    board = (
        dashboard.Dashboard("OneRing stores")
        .uid("onering-stores")
        .tags(["onering"])
        .refresh("5m")
        .time("now-7d", "now")
    )
    for i, panel in enumerate(STORES):
        board = board.with_panel(sql_panel(panel, i))
    return _json(board.build())


def _json(model: Any) -> dict[str, Any]:
    return json.loads(json.dumps(model, cls=JSONEncoder))


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in (("onering-pipeline", pipeline), ("onering-stores", stores))
    }


def write(folder: Path = FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered().items():
        path = folder / name
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        sys.stdout.write(f"{written}\n")
