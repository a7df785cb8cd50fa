"""When each Silver input's newest data was complete: the clock feature times compare with.

The data is from 2013, so "fresh" and "not from the future" are measured against the
newest Silver data, never the wall clock. Flights of day D are complete at D+1 00:00 New
York time (the stamp of the rows that first count them); weather one hour after its newest
hour's label (the HH:00 row holds readings up to HH:51, see origin_weather.sql).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from onering_assets.errors import ConfigError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

INPUT_CLOCKS = {
    ("silver", "flights"): (
        "SELECT toUnixTimestamp(toDateTime(max(flight_date) + 1, 'America/New_York')), "
        "count() FROM silver.flights"
    ),
    ("silver", "weather"): (
        "SELECT toUnixTimestamp(max(time_hour) + INTERVAL 1 HOUR), count() FROM silver.weather"
    ),
}


def inputs_known_at(client: Client, inputs: tuple[tuple[str, str], ...]) -> datetime:
    """The newest moment every input's data was complete (the earliest of their clocks).

    Raises:
        ConfigError: an input has no clock, or holds no rows yet.
    """
    moments = []
    for table in inputs:
        sql = INPUT_CLOCKS.get(table)
        if sql is None:
            known = ", ".join("/".join(t) for t in INPUT_CLOCKS)
            raise ConfigError(f"No clock for input {'/'.join(table)}; inputs with one: {known}.")
        seconds, rows = client.query(sql).result_rows[0]
        if not rows:
            raise ConfigError(
                f"{'.'.join(table)} has no rows yet; run `onering materialize` for it first."
            )
        moments.append(datetime.fromtimestamp(int(seconds), UTC))
    return min(moments)
