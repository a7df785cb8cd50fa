"""A synthetic declared project for timing `onering plan`: N tables, each file as a user writes.

``write_project(folder, silver, gold)`` writes ``platform/``: 10 Bronze tables of 12 columns,
``silver`` Silver tables (each a typed SELECT over one Bronze table, with its YAML) and
``gold`` Gold marts (each aggregating one or two Silver tables, with a Liquibase changeset),
so a plan reads, digests and — for changed tables — parses what a real project of that size
holds. ``deployed_for`` records every table as published from the files as written.
"""

from __future__ import annotations

from pathlib import Path

from onering_assets.change.sources import Source
from onering_assets.change.state import WHOLE, Deployed

BRONZE = 10
COLUMNS = 12
MONTHS = [f"2013-{m:02d}" for m in range(1, 13)]


def _bronze_yaml() -> str:
    lines = ["source: synthetic", "owners: [team:bench]", "tables:"]
    for b in range(BRONZE):
        lines += [f"  raw_{b}:", "    partitioned: true", "    columns:"]
        lines += [f"      c{i}: column {i}" for i in range(COLUMNS)]
        lines += ["      year: year", "      month: month", "      day: day"]
    return "\n".join(lines) + "\n"


def _silver(s: int) -> tuple[str, str]:
    b = s % BRONZE
    exprs = [f"    toInt64OrNull(c{i}) AS v{i}" for i in range(COLUMNS)]
    sql = (
        f"-- Silver table {s}: typed columns of raw_{b}.\nSELECT\n"
        + ",\n".join(exprs)
        + ",\n    makeDate(toInt32(year), toInt32(month), toInt32(day)) AS d,\n"
        + "    _batch_id, _ingested_at, _source, _partition, _row,\n"
        + "    '' AS _raw, '' AS _reject_reason\n"
        + f"FROM bronze.raw_{b}\n"
    )
    columns = "\n".join(f"  - {{name: v{i}, type: Nullable(Int64)}}" for i in range(COLUMNS))
    yml = (
        f"description: Synthetic Silver table {s}.\nowners: [team:bench]\nkey: [v0, d]\n"
        f"partitioned: true\nmax_reject_pct: 5\ncolumns:\n{columns}\n"
        "  - {name: d, type: Date}\n"
    )
    return sql, yml


def _gold(g: int, silver: int) -> tuple[str, str, str]:
    a, b = g % silver, (g * 7 + 3) % silver
    sql = (
        f"-- Gold mart {g}: silver_{a} joined to silver_{b}.\nSELECT\n"
        "    x.v0 AS k,\n    toStartOfMonth(x.d) AS month,\n    count() AS n,\n"
        "    sum(x.v1) AS total,\n    avg(y.v2) AS mean_other\n"
        f"FROM silver.s_{a} AS x\nLEFT JOIN silver.s_{b} AS y ON y.v0 = x.v0 AND y.d = x.d\n"
        "GROUP BY k, month\n"
    )
    yml = (
        f"description: Synthetic mart {g}.\nowners: [team:bench]\nkey: [k, month]\n"
        "partition_column: month\n"
    )
    ddl = (
        f"--changeset bench:g{g}\nCREATE TABLE gold.g_{g} (\n    k bigint NOT NULL,\n"
        "    month date NOT NULL,\n    n bigint NOT NULL,\n    total bigint,\n"
        "    mean_other double precision,\n    PRIMARY KEY (k, month)\n);\n"
    )
    return sql, yml, ddl


def write_project(folder: Path, silver: int, gold: int) -> Path:
    """Write the project's ``platform/`` under ``folder``; return it."""
    platform = folder / "platform"
    (platform / "sources").mkdir(parents=True)
    (platform / "sources" / "synthetic.yml").write_text(_bronze_yaml())
    sql_dir = platform / "analytics" / "clickhouse"
    (sql_dir / "silver").mkdir(parents=True)
    (sql_dir / "gold").mkdir(parents=True)
    for s in range(silver):
        sql, yml = _silver(s)
        (sql_dir / "silver" / f"s_{s}.sql").write_text(sql)
        (sql_dir / "silver" / f"s_{s}.yml").write_text(yml)
    changelog = ["--liquibase formatted sql\n", "--changeset bench:schema\nCREATE SCHEMA gold;\n"]
    for g in range(gold):
        sql, yml, ddl = _gold(g, silver)
        (sql_dir / "gold" / f"g_{g}.sql").write_text(sql)
        (sql_dir / "gold" / f"g_{g}.yml").write_text(yml)
        changelog.append(ddl)
    liquibase = platform / "versioning" / "liquibase" / "changelog"
    liquibase.mkdir(parents=True)
    (liquibase / "001-bench.sql").write_text("\n".join(changelog))
    return platform


def deployed_for(sources: dict[str, Source]) -> dict[str, dict[str, Deployed]]:
    """Every Silver and Gold table published for every month from ``sources``."""
    out: dict[str, dict[str, Deployed]] = {}
    for key, source in sources.items():
        if source.layer == "bronze":
            continue
        inputs = {r: sources[r].digest for r in source.reads() if r in sources}
        parts = MONTHS if source.layer in ("silver", "gold") else [WHOLE]
        out[key] = {p: Deployed(key, p, source.digest, inputs, "bench") for p in parts}
    return out
