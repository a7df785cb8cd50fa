-- origin_weather: one row per airport and observation hour, stamped at that hour (UTC).
SELECT
    origin,
    toTimeZone(time_hour, 'UTC') AS event_timestamp,
    temp AS weather_temp,
    humid AS weather_humid,
    wind_speed AS weather_wind_speed,
    precip AS weather_precip,
    visib AS weather_visib
FROM silver.weather
ORDER BY origin, event_timestamp
