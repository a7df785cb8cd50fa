"""Liquibase changelogs: read as Liquibase reads them, applied and recorded as it records them.

``formatted`` reads formatted-SQL changelogs and computes Liquibase's checksums; ``history``
matches them with the rows of a ``databasechangelog`` (refusing edited changesets). Gold's
applier (Postgres) is ``onering_assets.gold.ddl``; Silver's (ClickHouse) is
``onering_assets.silver.ddl``.
"""
