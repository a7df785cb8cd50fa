-- Aircraft by tail number.
SELECT
    upper(trimBoth(tailnum)) AS tailnum,
    toUInt16OrNull(year) AS year_built,
    type AS aircraft_type,
    manufacturer,
    model,
    toUInt8OrNull(engines) AS engines,
    toUInt16OrNull(seats) AS seats,
    toUInt16OrNull(speed) AS speed,
    engine,
    _batch_id,
    _ingested_at,
    _source,
    _partition,
    _row,
    formatRowNoNewline(
        'JSONEachRow', tailnum, year, type, manufacturer, model, engines, seats, speed, engine
    ) AS _raw,
    multiIf(
        tailnum IS NULL OR trimBoth(tailnum) = '', 'missing key: tailnum',
        seats IS NOT NULL AND toUInt16OrNull(seats) IS NULL, 'invalid seats',
        ''
    ) AS _reject_reason
FROM bronze.planes
