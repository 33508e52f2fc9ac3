"""DAG parse time: ``DagBag(dag_folder="dags")`` in a fresh process, median of several runs.

Each run is a new Python process with the project's environment (``include.cli.project_env``, with
``AIRFLOW_HOME`` in the benchmark's temp folder and examples off). The figure is the time
``DagBag(...)`` takes to fill, which includes importing cosmos and our ``include`` modules, as a
fresh DAG-processor process would; importing Airflow itself is reported separately, as is the whole
process's wall time. The dbt manifest is made with ``dbt parse`` first if it is missing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Result, Workspace, say
from include.config import DBT_PROJECT_DIR, PROJECT_ROOT

TARGET_S = 2.0

CHILD = """
import json, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
imported = time.perf_counter()
bag = DagBag(dag_folder="dags")
parsed = time.perf_counter()
print(json.dumps({"import_s": imported - started, "parse_s": parsed - imported, "dags": len(bag.dags),
                  "import_errors": {str(k): str(v)[-500:] for k, v in bag.import_errors.items()}}))
"""


def _env(ws: Workspace) -> dict[str, str]:
    from include.cli import airflow_home, project_env

    env = project_env(ws.server.url)  # C360_DATA_DIR points into the workspace: so does AIRFLOW_HOME
    airflow_home().mkdir(parents=True, exist_ok=True)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def run(ws: Workspace, runs: int = 5) -> Result:
    env = _env(ws)
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        say("dag parse: no dbt manifest, running dbt parse")
        dbt = [str(Path(sys.executable).parent / "dbt"), "parse", "--project-dir", str(DBT_PROJECT_DIR)]
        subprocess.run([*dbt, "--quiet"], env=env, cwd=PROJECT_ROOT, check=True)
    samples = []
    for i in range(runs):
        say(f"dag parse: run {i + 1}/{runs}")
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"DagBag child failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        sample = json.loads(proc.stdout.strip().splitlines()[-1])
        sample["process_s"] = wall
        samples.append(sample)
    parse_s = statistics.median(s["parse_s"] for s in samples)
    errors = samples[-1]["import_errors"]
    return Result(
        name="DAG parse (DagBag)",
        figure=parse_s,
        unit="s",
        target=f"<= {TARGET_S:g} s",
        met=parse_s <= TARGET_S and not errors,
        details={
            "runs": runs,
            "parse_s_median": round(parse_s, 3),
            "parse_s_all": [round(s["parse_s"], 3) for s in samples],
            "airflow_import_s_median": round(statistics.median(s["import_s"] for s in samples), 3),
            "process_wall_s_median": round(statistics.median(s["process_s"] for s in samples), 3),
            "dags": samples[-1]["dags"],
            "import_errors": errors,
        },
    )
