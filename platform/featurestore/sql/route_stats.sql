-- route_stats: one row per route (origin → dest) and day D, stamped D 00:00
-- America/New_York, from the route's flights of D-28 … D-1 that had landed by the stamp
-- (actual departure + air time + 60 minutes of taxi allowance; see carrier_stats.sql).
WITH landed AS (
    SELECT
        origin,
        dest,
        flight_date,
        arr_delay,
        distance,
        addMinutes(dep_at, air_time + 60) AS known_at
    FROM silver.flights
    WHERE arr_delay IS NOT NULL AND dep_at IS NOT NULL AND air_time IS NOT NULL
),
counted AS (
    SELECT
        origin,
        dest,
        arr_delay,
        distance,
        arrayJoin(range(
            toUInt32(greatest(
                flight_date + 1,
                toDate(known_at) + if(known_at = toStartOfDay(known_at), 0, 1)
            )),
            toUInt32(flight_date + 29)
        )) AS as_of_day
    FROM landed
)
SELECT
    origin,
    dest,
    toTimeZone(toDateTime(toDate(as_of_day), 'America/New_York'), 'UTC') AS event_timestamp,
    toInt64(count()) AS route_flights_28d,
    countIf(arr_delay > 15) / count() AS route_late_rate_28d,
    avg(arr_delay) AS route_mean_arr_delay_28d,
    toFloat64(avg(distance)) AS route_distance
FROM counted
-- Rows stop the day after the newest flight: a later window would count days with no data.
WHERE as_of_day <= toUInt32((SELECT max(flight_date) FROM silver.flights) + 1)
GROUP BY origin, dest, as_of_day
ORDER BY origin, dest, as_of_day
