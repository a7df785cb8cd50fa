-- Hourly weather at the three New York airports, typed, with local observation hours.
WITH parsed AS (
    SELECT
        upper(trimBoth(origin)) AS origin_code,
        toUInt16OrNull(year) AS year_num,
        toUInt8OrNull(month) AS month_num,
        toUInt8OrNull(day) AS day_num,
        toUInt8OrNull(hour) AS hour_num,
        toFloat64OrNull(temp) AS temp_f,
        toFloat64OrNull(dewp) AS dewp_f,
        toFloat64OrNull(humid) AS humid_pct,
        toUInt16OrNull(wind_dir) AS wind_dir_deg,
        toFloat64OrNull(wind_speed) AS wind_speed_mph,
        toFloat64OrNull(wind_gust) AS wind_gust_mph,
        toFloat64OrNull(precip) AS precip_in,
        toFloat64OrNull(pressure) AS pressure_mb,
        toFloat64OrNull(visib) AS visib_mi,
        parseDateTimeBestEffortOrNull(time_hour, 'UTC') AS time_hour_utc,
        _batch_id,
        _ingested_at,
        _source,
        _partition,
    _row,
        formatRowNoNewline(
            'JSONEachRow', origin, year, month, day, hour, temp, dewp, humid, wind_dir,
            wind_speed, wind_gust, precip, pressure, visib, time_hour
        ) AS raw_row,
        temp,
        wind_speed,
        precip,
        visib
    FROM bronze.weather
)
SELECT
    origin_code AS origin,
    toTimeZone(time_hour_utc, 'America/New_York') AS time_hour,
    makeDate(year_num, month_num, day_num) AS observed_date,
    hour_num AS hour,
    temp_f AS temp,
    dewp_f AS dewp,
    humid_pct AS humid,
    wind_dir_deg AS wind_dir,
    wind_speed_mph AS wind_speed,
    wind_gust_mph AS wind_gust,
    precip_in AS precip,
    pressure_mb AS pressure,
    visib_mi AS visib,
    _batch_id,
    _ingested_at,
    _source,
    _partition,
    _row,
    raw_row AS _raw,
    multiIf(
        origin_code IS NULL OR origin_code = '', 'missing key: origin',
        time_hour_utc IS NULL, 'missing or invalid key: time_hour',
        year_num IS NULL OR month_num IS NULL OR day_num IS NULL, 'invalid date parts',
        formatDateTime(makeDate(year_num, month_num, day_num), '%Y-%m') != _partition,
            'outside partition',
        temp IS NOT NULL AND temp_f IS NULL, 'invalid temp',
        wind_speed IS NOT NULL AND wind_speed_mph IS NULL, 'invalid wind_speed',
        precip IS NOT NULL AND precip_in IS NULL, 'invalid precip',
        visib IS NOT NULL AND visib_mi IS NULL, 'invalid visib',
        ''
    ) AS _reject_reason
FROM parsed
