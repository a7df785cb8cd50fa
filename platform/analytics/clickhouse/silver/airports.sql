-- Airports with location, altitude and time zone.
SELECT
    upper(trimBoth(faa)) AS faa,
    trimBoth(name) AS name,
    toFloat64OrNull(lat) AS lat,
    toFloat64OrNull(lon) AS lon,
    toInt32OrNull(alt) AS alt,
    toFloat64OrNull(tz) AS tz_offset,
    dst,
    tzone,
    _batch_id,
    _ingested_at,
    _source,
    _partition,
    _row,
    formatRowNoNewline('JSONEachRow', faa, name, lat, lon, alt, tz, dst, tzone) AS _raw,
    multiIf(
        faa IS NULL OR trimBoth(faa) = '', 'missing key: faa',
        toFloat64OrNull(lat) IS NULL OR toFloat64OrNull(lon) IS NULL, 'invalid coordinates',
        ''
    ) AS _reject_reason
FROM bronze.airports
