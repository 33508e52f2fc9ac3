#!/bin/sh
# Airflow's api-server (UI, REST API and the Execution API the workers report to). The admin's
# password comes from the environment into the file the SimpleAuthManager reads, at start-up: it is
# never in the image or the repository.
set -eu
python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
PY
exec airflow api-server --port 8080
