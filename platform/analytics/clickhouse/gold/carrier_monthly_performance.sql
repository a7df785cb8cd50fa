-- On-time performance per carrier and month of scheduled departure.
SELECT
    f.carrier AS carrier,
    nullIf(any(a.name), '') AS carrier_name,
    toStartOfMonth(f.flight_date) AS month,
    count() AS flights,
    countIf(f.dep_time IS NULL) AS cancelled,
    avg(f.dep_delay) AS avg_dep_delay,
    avg(f.arr_delay) AS avg_arr_delay,
    100 * countIf(f.arr_delay > 15) / nullIf(count(f.arr_delay), 0) AS pct_arr_delayed_15
FROM silver.flights AS f
LEFT JOIN silver.airlines AS a ON a.carrier = f.carrier
GROUP BY f.carrier, month
