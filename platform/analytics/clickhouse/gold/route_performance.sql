-- Whole-year performance of each origin-destination route.
SELECT
    origin,
    dest,
    count() AS flights,
    avg(arr_delay) AS avg_arr_delay,
    avg(distance) AS avg_distance,
    avg(air_time) AS avg_air_time
FROM silver.flights
GROUP BY origin, dest
