#!/usr/bin/env bash
# compose's postgres-init job (idempotent, run on every `up`): the databases the services keep
# their own state in (Dagster, Airflow, MLflow, Metabase), OpenMetadata's role, and onering_reader's login. The reader's grants
# come from Gold's Liquibase changelog (002-gold-reader.sql), which finds the role here
# ("roles are server-wide, so it may exist already"). Passwords reach psql as variables on
# stdin, never on a command line.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -q \
    -v reader_password="$ONERING_READER_PASSWORD" \
    -v om_password="${OPENMETADATA_DB_PASSWORD:-}" <<'SQL'
SELECT format('CREATE DATABASE %I', d) FROM unnest(ARRAY['dagster', 'airflow', 'mlflow', 'metabase']) AS d
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
SELECT 'CREATE ROLE onering_reader NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'onering_reader')
\gexec
SELECT format('ALTER ROLE onering_reader LOGIN PASSWORD %L', :'reader_password')
\gexec
-- OpenMetadata (profile catalog): its own role and database, when its password is set.
SELECT format('CREATE ROLE openmetadata_user LOGIN PASSWORD %L', :'om_password')
WHERE :'om_password' <> '' AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'openmetadata_user')
\gexec
SELECT format('ALTER ROLE openmetadata_user PASSWORD %L', :'om_password')
WHERE :'om_password' <> ''
\gexec
SELECT 'CREATE DATABASE openmetadata_db OWNER openmetadata_user'
WHERE :'om_password' <> '' AND NOT EXISTS (SELECT FROM pg_database WHERE datname = 'openmetadata_db')
\gexec
SQL
echo "postgres-init: databases and roles ready"
if [ -z "${OPENMETADATA_DB_PASSWORD:-}" ]; then
  echo "postgres-init: OPENMETADATA_DB_PASSWORD is empty: no openmetadata_db (the catalog profile needs it; set it in compose/.env and run postgres-init again)"
fi
