--liquibase formatted sql

--changeset onering:001-silver-database
--comment: The silver database holds typed, de-duplicated tables and their rejects.
CREATE DATABASE IF NOT EXISTS silver;
--rollback DROP DATABASE silver;

--changeset onering:002-airlines
--comment: Airline carriers, one row per two-letter carrier code.
CREATE TABLE IF NOT EXISTS silver.airlines (
    `carrier` String,
    `name` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_partition` String,
    `_row` UInt64
) ENGINE = MergeTree ORDER BY (`carrier`);
--rollback DROP TABLE silver.airlines;

--changeset onering:003-airlines-rejects
--comment: Rows of silver.airlines rejected by its build, with the landed row and the reason.
CREATE TABLE IF NOT EXISTS silver.airlines_rejects (
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree ORDER BY (`_partition`, `_reject_reason`);
--rollback DROP TABLE silver.airlines_rejects;

--changeset onering:004-airlines-rejects-failed
--comment: Staged rejects of failed builds of silver.airlines, kept as evidence by run (dropped by onering gc).
CREATE TABLE IF NOT EXISTS silver.airlines_rejects_failed (
    `_run_id` String,
    `_failed_at` DateTime('UTC'),
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree PARTITION BY _run_id ORDER BY (_partition, _reject_reason, _row);
--rollback DROP TABLE silver.airlines_rejects_failed;

--changeset onering:005-airports
--comment: Airports (FAA code, name, coordinates, altitude and time zone).
CREATE TABLE IF NOT EXISTS silver.airports (
    `faa` String,
    `name` Nullable(String),
    `lat` Float64,
    `lon` Float64,
    `alt` Nullable(Int32),
    `tz_offset` Nullable(Float64),
    `dst` Nullable(String),
    `tzone` Nullable(String),
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_partition` String,
    `_row` UInt64
) ENGINE = MergeTree ORDER BY (`faa`);
--rollback DROP TABLE silver.airports;

--changeset onering:006-airports-rejects
--comment: Rows of silver.airports rejected by its build, with the landed row and the reason.
CREATE TABLE IF NOT EXISTS silver.airports_rejects (
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree ORDER BY (`_partition`, `_reject_reason`);
--rollback DROP TABLE silver.airports_rejects;

--changeset onering:007-airports-rejects-failed
--comment: Staged rejects of failed builds of silver.airports, kept as evidence by run (dropped by onering gc).
CREATE TABLE IF NOT EXISTS silver.airports_rejects_failed (
    `_run_id` String,
    `_failed_at` DateTime('UTC'),
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree PARTITION BY _run_id ORDER BY (_partition, _reject_reason, _row);
--rollback DROP TABLE silver.airports_rejects_failed;

--changeset onering:008-flights
--comment: Every scheduled departure from the New York airports (EWR, JFK, LGA), typed and de-duplicated on (flight_date, carrier, flight, origin), with local departure timestamps.
CREATE TABLE IF NOT EXISTS silver.flights (
    `flight_date` Date,
    `carrier` String,
    `flight` UInt32,
    `origin` String,
    `dest` String,
    `tailnum` Nullable(String),
    `sched_dep_at` DateTime('America/New_York'),
    `dep_at` Nullable(DateTime('America/New_York')),
    `dep_time` Nullable(UInt16),
    `sched_dep_time` UInt16,
    `dep_delay` Nullable(Int32),
    `arr_time` Nullable(UInt16),
    `sched_arr_time` Nullable(UInt16),
    `arr_delay` Nullable(Int32),
    `air_time` Nullable(UInt16),
    `distance` Nullable(UInt32),
    `time_hour` Nullable(DateTime('America/New_York')),
    `cancelled` Bool,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_partition` String,
    `_row` UInt64
) ENGINE = MergeTree PARTITION BY _partition ORDER BY (`carrier`, `origin`, `flight_date`, `flight`);
--rollback DROP TABLE silver.flights;

--changeset onering:009-flights-rejects
--comment: Rows of silver.flights rejected by its build, with the landed row and the reason.
CREATE TABLE IF NOT EXISTS silver.flights_rejects (
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree PARTITION BY _partition ORDER BY (`_partition`, `_reject_reason`);
--rollback DROP TABLE silver.flights_rejects;

--changeset onering:010-flights-rejects-failed
--comment: Staged rejects of failed builds of silver.flights, kept as evidence by run (dropped by onering gc).
CREATE TABLE IF NOT EXISTS silver.flights_rejects_failed (
    `_run_id` String,
    `_failed_at` DateTime('UTC'),
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree PARTITION BY _run_id ORDER BY (_partition, _reject_reason, _row);
--rollback DROP TABLE silver.flights_rejects_failed;

--changeset onering:011-planes
--comment: Aircraft registered by tail number, with manufacturer, model and capacity.
CREATE TABLE IF NOT EXISTS silver.planes (
    `tailnum` String,
    `year_built` Nullable(UInt16),
    `aircraft_type` Nullable(String),
    `manufacturer` Nullable(String),
    `model` Nullable(String),
    `engines` Nullable(UInt8),
    `seats` Nullable(UInt16),
    `speed` Nullable(UInt16),
    `engine` Nullable(String),
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_partition` String,
    `_row` UInt64
) ENGINE = MergeTree ORDER BY (`tailnum`);
--rollback DROP TABLE silver.planes;

--changeset onering:012-planes-rejects
--comment: Rows of silver.planes rejected by its build, with the landed row and the reason.
CREATE TABLE IF NOT EXISTS silver.planes_rejects (
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree ORDER BY (`_partition`, `_reject_reason`);
--rollback DROP TABLE silver.planes_rejects;

--changeset onering:013-planes-rejects-failed
--comment: Staged rejects of failed builds of silver.planes, kept as evidence by run (dropped by onering gc).
CREATE TABLE IF NOT EXISTS silver.planes_rejects_failed (
    `_run_id` String,
    `_failed_at` DateTime('UTC'),
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree PARTITION BY _run_id ORDER BY (_partition, _reject_reason, _row);
--rollback DROP TABLE silver.planes_rejects_failed;

--changeset onering:014-weather
--comment: Hourly weather observations at EWR, JFK and LGA, typed, one row per (origin, time_hour).
CREATE TABLE IF NOT EXISTS silver.weather (
    `origin` String,
    `time_hour` DateTime('America/New_York'),
    `observed_date` Date,
    `hour` Nullable(UInt8),
    `temp` Nullable(Float64),
    `dewp` Nullable(Float64),
    `humid` Nullable(Float64),
    `wind_dir` Nullable(UInt16),
    `wind_speed` Nullable(Float64),
    `wind_gust` Nullable(Float64),
    `precip` Nullable(Float64),
    `pressure` Nullable(Float64),
    `visib` Nullable(Float64),
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_partition` String,
    `_row` UInt64
) ENGINE = MergeTree PARTITION BY _partition ORDER BY (`origin`, `time_hour`);
--rollback DROP TABLE silver.weather;

--changeset onering:015-weather-rejects
--comment: Rows of silver.weather rejected by its build, with the landed row and the reason.
CREATE TABLE IF NOT EXISTS silver.weather_rejects (
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree PARTITION BY _partition ORDER BY (`_partition`, `_reject_reason`);
--rollback DROP TABLE silver.weather_rejects;

--changeset onering:016-weather-rejects-failed
--comment: Staged rejects of failed builds of silver.weather, kept as evidence by run (dropped by onering gc).
CREATE TABLE IF NOT EXISTS silver.weather_rejects_failed (
    `_run_id` String,
    `_failed_at` DateTime('UTC'),
    `_partition` String,
    `_batch_id` String,
    `_ingested_at` DateTime64(3, 'UTC'),
    `_source` String,
    `_row` UInt64,
    `_raw` String,
    `_reject_reason` LowCardinality(String)
) ENGINE = MergeTree PARTITION BY _run_id ORDER BY (_partition, _reject_reason, _row);
--rollback DROP TABLE silver.weather_rejects_failed;
