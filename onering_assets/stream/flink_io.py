"""What the Flink job reads and writes, and the independent answers its results must equal.

The main environment hands the job Silver's departed flights as a header-less CSV sorted by
local departure time (:func:`export_departures`); the job writes header-less CSV results,
read back here with their declared types (:func:`read_result`). The same two answers are
computed without Flink from the very CSV it read — the hourly counts by an Arrow group-by,
the delay streaks by a plain scan per route (:func:`reference`) — and a result is published
only when it equals its reference row for row.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as _compute
from pyarrow import csv

pc: Any = _compute  # pyarrow's compute functions are generated at import: no stubs

# The job's input, in the job's column order (envs/flink/onering_flink/flights_job.py).
DEPARTURES_SQL = """
SELECT carrier, toInt32(flight) AS flight, origin, dest, toString(dep_at) AS dep_local,
       assumeNotNull(dep_delay) AS dep_delay
FROM silver.flights
WHERE dep_at IS NOT NULL AND dep_delay IS NOT NULL
ORDER BY dep_local, carrier, flight
"""
DELAYED_MIN = 15  # the job's threshold: a departure more than 15 minutes late
STREAK = 3
LOCAL = pa.timestamp("s")  # New York local time, as Silver's DateTime('America/New_York') reads
SCHEMAS: dict[str, pa.Schema] = {
    "departures_hourly": pa.schema(
        [
            ("airport", pa.string()),
            ("hour_start", LOCAL),
            ("departures", pa.int64()),
            ("delayed", pa.int64()),
            ("avg_delay_min", pa.float64()),
        ]
    ),
    "delay_streaks": pa.schema(
        [
            ("route", pa.string()),
            ("first_carrier", pa.string()),
            ("first_flight", pa.int32()),
            ("first_dep", LOCAL),
            ("last_carrier", pa.string()),
            ("last_flight", pa.int32()),
            ("last_dep", LOCAL),
            ("min_delay", pa.int32()),
            ("max_delay", pa.int32()),
        ]
    ),
}
COLUMNS = {
    "airport": "Origin airport FAA code.",
    "hour_start": "Start of the one-hour window, New York local time.",
    "departures": "Departed flights in the window (dep_at within the hour).",
    "delayed": f"Of those, departures more than {DELAYED_MIN} minutes late.",
    "avg_delay_min": "Mean departure delay in minutes (negative is early).",
    "route": "Origin-destination, e.g. JFK-LAX.",
    "first_carrier": "Carrier of the streak's first delayed departure.",
    "first_flight": "Flight number of the streak's first delayed departure.",
    "first_dep": "Actual departure of the first, New York local time.",
    "last_carrier": "Carrier of the streak's third delayed departure.",
    "last_flight": "Flight number of the third.",
    "last_dep": "Actual departure of the third, New York local time.",
    "min_delay": "Smallest departure delay of the three, minutes.",
    "max_delay": "Largest departure delay of the three, minutes.",
}
KEYS = {"departures_hourly": ["airport", "hour_start"], "delay_streaks": ["route", "first_dep"]}


def export_departures(client: Any, path: Path) -> int:
    """Write the job's input from Silver; return how many departures it holds."""
    data = client.query_arrow(DEPARTURES_SQL)
    csv.write_csv(data, str(path), csv.WriteOptions(include_header=False))
    return data.num_rows


def read_departures(path: Path) -> pa.Table:
    names = ["carrier", "flight", "origin", "dest", "dep_local", "dep_delay"]
    types = {"flight": pa.int32(), "dep_delay": pa.int32(), "dep_local": pa.string()}
    return csv.read_csv(
        str(path),
        read_options=csv.ReadOptions(column_names=names),
        convert_options=csv.ConvertOptions(column_types=types),
    )


def read_result(name: str, files: list[str]) -> pa.Table:
    """The job's CSV part files for one result, typed by :data:`SCHEMAS`."""
    schema = SCHEMAS[name]
    opts = csv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        timestamp_parsers=["%Y-%m-%d %H:%M:%S"],
    )
    tables = [
        csv.read_csv(
            f, read_options=csv.ReadOptions(column_names=schema.names), convert_options=opts
        )
        for f in files
        if Path(f).stat().st_size
    ]
    rows = pa.concat_tables(tables) if tables else schema.empty_table()
    return sort(name, rows.select(schema.names).cast(schema))


def sort(name: str, table: pa.Table) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in KEYS[name]])


def hourly_reference(departures: pa.Table) -> pa.Table:
    """Departures per origin airport and local hour, by Arrow (no Flink)."""
    hour = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(departures["dep_local"], 0, 13), ":00:00", ""
    )
    delayed = pc.cast(pc.greater(departures["dep_delay"], DELAYED_MIN), pa.int64())
    grouped = (
        pa.table(
            {
                "airport": departures["origin"],
                "hour": hour,
                "delayed": delayed,
                "delay": pc.cast(departures["dep_delay"], pa.float64()),
            }
        )
        .group_by(["airport", "hour"])
        .aggregate([("airport", "count"), ("delayed", "sum"), ("delay", "mean")])
    )
    table = pa.table(
        {
            "airport": grouped["airport"],
            "hour_start": pc.strptime(grouped["hour"], "%Y-%m-%d %H:%M:%S", "s"),
            "departures": grouped["airport_count"],
            "delayed": grouped["delayed_sum"],
            "avg_delay_min": grouped["delay_mean"],
        }
    )
    return sort("departures_hourly", table.cast(SCHEMAS["departures_hourly"]))


def streaks_reference(departures: pa.Table) -> pa.Table:
    """Runs of three delayed departures in a row on a route (non-overlapping), by a scan."""
    by_route: dict[str, list[tuple[str, str, int, int]]] = defaultdict(list)
    for row in departures.to_pylist():
        route = f"{row['origin']}-{row['dest']}"
        by_route[route].append((row["dep_local"], row["carrier"], row["flight"], row["dep_delay"]))
    found: list[dict[str, Any]] = []
    for route, flights in by_route.items():
        run: list[tuple[str, str, int, int]] = []
        for flight in sorted(flights):
            run = [*run, flight] if flight[3] > DELAYED_MIN else []
            if len(run) == STREAK:
                found.append(_streak(route, run))
                run = []
    table = pa.Table.from_pylist(
        found,
        schema=pa.schema(
            [(f.name, pa.string() if f.type == LOCAL else f.type) for f in SCHEMAS["delay_streaks"]]
        ),
    )
    for column in ("first_dep", "last_dep"):
        index = table.schema.get_field_index(column)
        table = table.set_column(
            index, column, pc.strptime(table[column], "%Y-%m-%d %H:%M:%S", "s")
        )
    return sort("delay_streaks", table)


def _streak(route: str, run: list[tuple[str, str, int, int]]) -> dict[str, Any]:
    first, last = run[0], run[-1]
    delays = [f[3] for f in run]
    return {
        "route": route,
        "first_carrier": first[1],
        "first_flight": first[2],
        "first_dep": first[0],
        "last_carrier": last[1],
        "last_flight": last[2],
        "last_dep": last[0],
        "min_delay": min(delays),
        "max_delay": max(delays),
    }


def reference(name: str, departures: pa.Table) -> pa.Table:
    return (
        hourly_reference(departures)
        if name == "departures_hourly"
        else streaks_reference(departures)
    )


def _repeated(table: pa.Table, keys: list[str]) -> list[tuple[Any, ...]]:
    """Each key ``table`` holds more than once, once per extra row."""
    seen: set[tuple[Any, ...]] = set()
    repeated = []
    for key in zip(*(table.column(k).to_pylist() for k in keys), strict=True):
        if key in seen:
            repeated.append(key)
        seen.add(key)
    return repeated


def differences(
    name: str, got: pa.Table, want: pa.Table
) -> tuple[int, int, int, list[dict[str, Any]]]:
    """Rows missing from ``got``, extra in it, and differing at the same key; a sample."""
    keys = KEYS[name]

    def keyed(table: pa.Table) -> dict[tuple[Any, ...], dict[str, Any]]:
        return {tuple(r[k] for k in keys): r for r in table.to_pylist()}

    have, expected = keyed(got), keyed(want)
    missing = [k for k in expected if k not in have]
    extra = [k for k in have if k not in expected]
    extra += _repeated(got, keys)  # a key Flink gave twice is an extra row (dicts keep one)
    changed = [k for k in expected if k in have and not _same(have[k], expected[k])]
    sample = (
        [{"missing": str(k)} for k in missing[:2]]
        + [{"extra": str(k)} for k in extra[:2]]
        + [
            {"differs": str(k), "flink": str(have[k]), "reference": str(expected[k])}
            for k in changed[:2]
        ]
    )
    return len(missing), len(extra), len(changed), sample


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(
        math.isclose(v, b[k], rel_tol=1e-9, abs_tol=1e-9) if isinstance(v, float) else v == b[k]
        for k, v in a.items()
    )
