#!/bin/bash
# First start of the metadata PostgreSQL only (docker-entrypoint-initdb.d): Superset's database and
# login next to Airflow's. The password comes from the container's environment (.env).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=pw="$SUPERSET_DB_PASSWORD" <<'SQL'
create role superset login password :'pw';
create database superset owner superset;
SQL
