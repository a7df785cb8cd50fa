"""`onering migrate`: Gold's and Silver's pending Liquibase changesets, listed or applied.

Builds apply them too (Gold's before it writes, Silver's before each table's build); this
is the explicit step for a deploy (compose's ``migrate`` job, a CI stage) and the review of
what a change would apply. Gold's history is ``public.databasechangelog`` in Postgres,
Silver's ``default.databasechangelog`` in ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass

from onering_assets.settings import Settings


@dataclass(frozen=True)
class Migration:
    """One store's changesets: those applied by this call, or those still pending."""

    store: str
    history: str
    changesets: list[str]


def migrate(settings: Settings, *, apply: bool) -> list[Migration]:
    """Apply (``apply``) or list the pending changesets of Gold, then of Silver."""
    from onering_assets.definitions import resources_for
    from onering_assets.gold.assets import LIQUIBASE_DIR
    from onering_assets.gold.ddl import apply_changelogs as apply_gold
    from onering_assets.gold.ddl import pending_changesets as pending_gold
    from onering_assets.query import resolved
    from onering_assets.silver import ddl as silver

    resources = resources_for(settings)
    done: list[Migration] = []
    with resolved(resources["postgres"]) as pg, pg.connect() as conn:
        labels = (
            apply_gold(conn, LIQUIBASE_DIR)
            if apply
            else [cs.label for cs in pending_gold(conn, LIQUIBASE_DIR)]
        )
        done.append(Migration("Gold (Postgres)", "public.databasechangelog", labels))
    with resolved(resources["clickhouse"]) as ch, ch.session() as client:
        labels = (
            silver.apply_changelogs(client, ch.locks())
            if apply
            else [cs.label for cs in silver.pending_changesets(client)]
        )
        done.append(Migration("Silver (ClickHouse)", silver.LOG_TABLE, labels))
    return done
