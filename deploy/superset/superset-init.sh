#!/bin/bash
# superset-init (docker-compose.yaml): metadata schema, the admin from the environment, the default
# roles, then the bundle (warehouse connection as bi_reader, datasets, charts, dashboards). Idempotent:
# an existing admin is kept, the bundle overwrites what it imported before.
set -euo pipefail
superset db upgrade
superset fab create-admin \
  --username "$SUPERSET_ADMIN_USER" --password "$SUPERSET_ADMIN_PASSWORD" \
  --firstname Superset --lastname Admin --email "$SUPERSET_ADMIN_EMAIL"
superset init
python /app/c360/provision.py /app/c360/bundle --username "$SUPERSET_ADMIN_USER"
