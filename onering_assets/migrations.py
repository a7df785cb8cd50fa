"""`onering migrate`: Gold's and Silver's pending Liquibase changesets, listed or applied.

Builds apply them too (Gold's before it writes, Silver's before each table's build); this
is the explicit step for a deploy (compose's ``migrate`` job, a CI stage) and the review of
what a change would apply. Gold's history is ``public.databasechangelog`` in Postgres,
Silver's ``default.databasechangelog`` in ClickHouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from onering_assets.settings import Settings


@dataclass(frozen=True)
class Migration:
    """One store's changesets: those applied by this call, or those still pending."""

    store: str
    history: str
    changesets: list[str]


def _fresh(settings: Settings) -> tuple[bool, bool]:
    """Whether the embedded Gold and Silver were never created (local profile only)."""
    if settings.profile != "local":
        return False, False
    return not settings.postgres_dir.exists(), not settings.clickhouse_dir.exists()


def migrate(settings: Settings, *, apply: bool) -> Iterator[Migration]:
    """Apply (``apply``) or list the pending changesets of Gold, then of Silver, one by one.

    Listing never creates a store: an embedded Gold or Silver that does not exist yet has
    every changeset pending, and is not started or created to say so.
    """
    from onering_assets.changelogs.formatted import read_changelog
    from onering_assets.definitions import resources_for
    from onering_assets.gold.assets import LIQUIBASE_DIR
    from onering_assets.gold.ddl import apply_changelogs as apply_gold
    from onering_assets.gold.ddl import pending_changesets as pending_gold
    from onering_assets.query import resolved
    from onering_assets.silver import ddl as silver

    resources = resources_for(settings)
    fresh_gold, fresh_silver = _fresh(settings) if not apply else (False, False)
    gold = ("Gold (Postgres)", "public.databasechangelog")
    if fresh_gold:
        yield Migration(*gold, [cs.label for cs in read_changelog(LIQUIBASE_DIR)])
    else:
        with resolved(resources["postgres"]) as pg, pg.connect() as conn:
            labels = (
                apply_gold(conn, LIQUIBASE_DIR)
                if apply
                else [cs.label for cs in pending_gold(conn, LIQUIBASE_DIR)]
            )
        yield Migration(*gold, labels)
    ch_names = ("Silver (ClickHouse)", silver.LOG_TABLE)
    if fresh_silver:
        yield Migration(*ch_names, [cs.label for cs in read_changelog(silver.CHANGELOG_DIR)])
        return
    with resolved(resources["clickhouse"]) as ch, ch.session() as client:
        labels = (
            silver.apply_changelogs(client, ch.locks())
            if apply
            else [cs.label for cs in silver.pending_changesets(client)]
        )
    yield Migration(*ch_names, labels)
