-- Typed, cleaned flights. One row per flight: bronze values parsed, local (America/New_York)
-- departure timestamps derived, and a reason for every row that cannot be trusted.
-- _reject_reason = '' keeps the row; anything else sends it, with _raw, to flights_rejects.
WITH parsed AS (
    SELECT
        toUInt16OrNull(year) AS year_num,
        toUInt8OrNull(month) AS month_num,
        toUInt8OrNull(day) AS day_num,
        toUInt16OrNull(dep_time) AS dep_time_num,
        toUInt16OrNull(sched_dep_time) AS sched_dep_time_num,
        toInt32OrNull(dep_delay) AS dep_delay_min,
        toUInt16OrNull(arr_time) AS arr_time_num,
        toUInt16OrNull(sched_arr_time) AS sched_arr_time_num,
        toInt32OrNull(arr_delay) AS arr_delay_min,
        upper(trimBoth(carrier)) AS carrier_code,
        toUInt32OrNull(flight) AS flight_num,
        nullIf(trimBoth(tailnum), '') AS tailnum_code,
        upper(trimBoth(origin)) AS origin_code,
        upper(trimBoth(dest)) AS dest_code,
        toUInt16OrNull(air_time) AS air_time_min,
        toUInt32OrNull(distance) AS distance_mi,
        parseDateTimeBestEffortOrNull(time_hour, 'UTC') AS time_hour_utc,
        _batch_id,
        _ingested_at,
        _source,
        _partition,
    _row,
        formatRowNoNewline(
            'JSONEachRow', year, month, day, dep_time, sched_dep_time, dep_delay, arr_time,
            sched_arr_time, arr_delay, carrier, flight, tailnum, origin, dest, air_time,
            distance, hour, minute, time_hour
        ) AS raw_row,
        dep_delay,
        arr_delay
    FROM bronze.flights
)
SELECT
    makeDate(year_num, month_num, day_num) AS flight_date,
    carrier_code AS carrier,
    flight_num AS flight,
    origin_code AS origin,
    dest_code AS dest,
    tailnum_code AS tailnum,
    makeDateTime(
        year_num, month_num, day_num,
        intDiv(sched_dep_time_num, 100), sched_dep_time_num % 100, 0, 'America/New_York'
    ) AS sched_dep_at,
    if(
        dep_delay_min IS NULL, NULL,
        addMinutes(
            makeDateTime(
                year_num, month_num, day_num,
                intDiv(sched_dep_time_num, 100), sched_dep_time_num % 100, 0,
                'America/New_York'
            ),
            dep_delay_min
        )
    ) AS dep_at,
    dep_time_num AS dep_time,
    sched_dep_time_num AS sched_dep_time,
    dep_delay_min AS dep_delay,
    arr_time_num AS arr_time,
    sched_arr_time_num AS sched_arr_time,
    arr_delay_min AS arr_delay,
    air_time_min AS air_time,
    distance_mi AS distance,
    toTimeZone(time_hour_utc, 'America/New_York') AS time_hour,
    dep_time_num IS NULL AS cancelled,
    _batch_id,
    _ingested_at,
    _source,
    _partition,
    _row,
    raw_row AS _raw,
    multiIf(
        year_num IS NULL OR month_num IS NULL OR day_num IS NULL, 'invalid date parts',
        month_num NOT BETWEEN 1 AND 12 OR day_num NOT BETWEEN 1 AND 31, 'invalid date parts',
        carrier_code IS NULL OR carrier_code = '', 'missing key: carrier',
        flight_num IS NULL, 'missing or invalid key: flight',
        origin_code IS NULL OR origin_code = '', 'missing key: origin',
        sched_dep_time_num IS NULL OR sched_dep_time_num % 100 >= 60
            OR sched_dep_time_num >= 2400, 'invalid sched_dep_time',
        formatDateTime(makeDate(year_num, month_num, day_num), '%Y-%m') != _partition,
            'outside partition',
        dep_delay IS NOT NULL AND dep_delay_min IS NULL, 'invalid dep_delay',
        arr_delay IS NOT NULL AND arr_delay_min IS NULL, 'invalid arr_delay',
        ''
    ) AS _reject_reason
FROM parsed
