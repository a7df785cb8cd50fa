--liquibase formatted sql

--changeset onering:001-gold-schema
--comment: The gold schema holds curated marts for BI and features.
CREATE SCHEMA IF NOT EXISTS gold;
--rollback DROP SCHEMA gold;

--changeset onering:002-carrier-monthly-performance
CREATE TABLE gold.carrier_monthly_performance (
    carrier text NOT NULL,
    carrier_name text,
    month date NOT NULL,
    flights bigint NOT NULL,
    cancelled bigint NOT NULL,
    avg_dep_delay double precision,
    avg_arr_delay double precision,
    pct_arr_delayed_15 double precision,
    PRIMARY KEY (carrier, month)
);
--rollback DROP TABLE gold.carrier_monthly_performance;

--changeset onering:003-route-performance
CREATE TABLE gold.route_performance (
    origin text NOT NULL,
    dest text NOT NULL,
    flights bigint NOT NULL,
    avg_arr_delay double precision,
    avg_distance double precision,
    avg_air_time double precision,
    PRIMARY KEY (origin, dest)
);
--rollback DROP TABLE gold.route_performance;

--changeset onering:004-airport-daily-weather
CREATE TABLE gold.airport_daily_weather (
    origin text NOT NULL,
    day date NOT NULL,
    flights bigint NOT NULL,
    avg_dep_delay double precision,
    avg_precip double precision,
    avg_visib double precision,
    avg_wind_speed double precision,
    PRIMARY KEY (origin, day)
);
--rollback DROP TABLE gold.airport_daily_weather;
