-- Departures and the day's weather at each New York airport.
WITH
    daily_flights AS (
        SELECT
            origin,
            flight_date AS day,
            count() AS flights,
            avg(dep_delay) AS avg_dep_delay
        FROM silver.flights
        GROUP BY origin, day
    ),
    daily_weather AS (
        SELECT
            origin,
            observed_date AS day,
            -- Float sums depend on the order threads add them in; rounding to 6 decimals
            -- keeps a re-run byte-identical (the source has 5).
            round(avg(precip), 6) AS avg_precip,
            round(avg(visib), 6) AS avg_visib,
            round(avg(wind_speed), 6) AS avg_wind_speed
        FROM silver.weather
        GROUP BY origin, day
    )
SELECT
    f.origin AS origin,
    f.day AS day,
    f.flights AS flights,
    f.avg_dep_delay AS avg_dep_delay,
    w.avg_precip AS avg_precip,
    w.avg_visib AS avg_visib,
    w.avg_wind_speed AS avg_wind_speed
FROM daily_flights AS f
LEFT JOIN daily_weather AS w ON w.origin = f.origin AND w.day = f.day
