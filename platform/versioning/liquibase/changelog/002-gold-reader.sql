--liquibase formatted sql

--changeset onering:005-gold-reader-role splitStatements:false
--comment: onering_reader may only read Gold (onering sql, BI tools). Roles are server-wide, so it may exist already; LOGIN and its password are set outside the changelog.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'onering_reader') THEN
        CREATE ROLE onering_reader NOLOGIN;
    END IF;
END
$$;
ALTER ROLE onering_reader SET default_transaction_read_only = on;
--rollback DROP ROLE onering_reader;

--changeset onering:006-gold-reader-grants
--comment: SELECT on every Gold table, including tables created later by the role that migrates.
GRANT USAGE ON SCHEMA gold TO onering_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA gold TO onering_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA gold GRANT SELECT ON TABLES TO onering_reader;
--rollback ALTER DEFAULT PRIVILEGES IN SCHEMA gold REVOKE SELECT ON TABLES FROM onering_reader;
--rollback REVOKE SELECT ON ALL TABLES IN SCHEMA gold FROM onering_reader;
--rollback REVOKE USAGE ON SCHEMA gold FROM onering_reader;
