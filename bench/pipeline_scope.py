"""What the pipeline bench runs over: the run range, the layers, the stores of a state
folder, and which of a worker's runs count (the first is a warm-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onering_assets.resources import (
        ClickHouseResource,
        LakeResource,
        PostgresResource,
        SourceResource,
    )

FIRST, LAST = "2013-01", "2013-12"
LAYERS = ("bronze", "silver", "gold")


def months() -> list[str]:
    """Every monthly partition key of the run range."""
    from onering_assets.partitions import MONTHLY

    return [k for k in MONTHLY.get_partition_keys() if FIRST <= k <= LAST]


def warm_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The measured runs (every run after the warm-up), or the only run if just one."""
    return runs[1:] or runs


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The warm run with the median total time."""
    warm = sorted(warm_runs(runs), key=lambda r: r["seconds"])
    return warm[(len(warm) - 1) // 2]


@dataclass(frozen=True)
class Stores:
    """The resources of one state folder, built the way ``resources_for`` builds them."""

    source: SourceResource
    lake: LakeResource
    ch: ClickHouseResource
    pg: PostgresResource

    @classmethod
    def for_state(cls, state_dir: Path, source_dir: Path | None) -> Stores:
        from onering_assets.resources import (
            ClickHouseResource,
            LakeResource,
            PostgresResource,
            SourceResource,
        )

        return cls(
            source=SourceResource(path=str(source_dir) if source_dir else None),
            lake=LakeResource(url=(state_dir / "lake").as_uri()),
            ch=ClickHouseResource(dsn=f"chdb://{state_dir / 'clickhouse'}"),
            pg=PostgresResource(embedded_dir=str(state_dir / "postgres")),
        )
