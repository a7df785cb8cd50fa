-- Carrier codes and names.
SELECT
    upper(trimBoth(carrier)) AS carrier,
    trimBoth(name) AS name,
    _batch_id,
    _ingested_at,
    _source,
    _partition,
    _row,
    formatRowNoNewline('JSONEachRow', carrier, name) AS _raw,
    multiIf(
        carrier IS NULL OR trimBoth(carrier) = '', 'missing key: carrier',
        name IS NULL OR trimBoth(name) = '', 'missing name',
        ''
    ) AS _reject_reason
FROM bronze.airlines
