--liquibase formatted sql

--changeset onering:002-row-column
--comment: Tables made before _row existed gain it (0, position unknown, for their rows), where a new table has it.
ALTER TABLE silver.airlines ADD COLUMN IF NOT EXISTS `_row` UInt64;
ALTER TABLE silver.airlines_rejects ADD COLUMN IF NOT EXISTS `_row` UInt64 AFTER `_source`;
ALTER TABLE silver.airports ADD COLUMN IF NOT EXISTS `_row` UInt64;
ALTER TABLE silver.airports_rejects ADD COLUMN IF NOT EXISTS `_row` UInt64 AFTER `_source`;
ALTER TABLE silver.flights ADD COLUMN IF NOT EXISTS `_row` UInt64;
ALTER TABLE silver.flights_rejects ADD COLUMN IF NOT EXISTS `_row` UInt64 AFTER `_source`;
ALTER TABLE silver.planes ADD COLUMN IF NOT EXISTS `_row` UInt64;
ALTER TABLE silver.planes_rejects ADD COLUMN IF NOT EXISTS `_row` UInt64 AFTER `_source`;
ALTER TABLE silver.weather ADD COLUMN IF NOT EXISTS `_row` UInt64;
ALTER TABLE silver.weather_rejects ADD COLUMN IF NOT EXISTS `_row` UInt64 AFTER `_source`;
