#!/bin/sh
# First start of the timescaledb container only (docker-entrypoint-initdb.d): the least-privileged role HDI's
# loads and reads use when HDI_APP_PASSWORD is set. It gets row rights only; `hdi db migrate` (run as the owner,
# POSTGRES_USER, which owns database hdi and its tables) grants them at every migrate. Then set
#   HDI_DATABASE_APP_URL=postgresql+psycopg2://hdi_app:<HDI_APP_PASSWORD>@timescaledb:5432/hdi
set -eu
if [ -z "${HDI_APP_PASSWORD:-}" ]; then
    echo "init-app-role.sh: HDI_APP_PASSWORD unset; no app role (HDI uses the owner role for everything)"
    exit 0
fi
psql -v ON_ERROR_STOP=1 -v app_password="$HDI_APP_PASSWORD" --username "$POSTGRES_USER" --dbname hdi <<'SQL'
CREATE ROLE hdi_app LOGIN PASSWORD :'app_password';
GRANT CONNECT, TEMPORARY ON DATABASE hdi TO hdi_app;
SQL
