"""A ClickHouse catalogue question many modules ask: does this table exist?"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def table_exists(client: Client, database: str, table: str) -> bool:
    """Whether ``database.table`` exists (a query of ``system.tables``; creates nothing)."""
    found = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    )
    return bool(found.result_rows[0][0])
