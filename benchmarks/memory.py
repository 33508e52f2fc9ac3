"""Peak memory of a database extract of N records.

A fresh Python process runs ``extract_entity`` (ERP ``customer_master``, ``full_refresh=True``) of the
N-row source table into an empty warehouse database. The figure is the child's peak RSS, which it
reports itself (``VmHWM`` of its address space, ``common.vm_hwm_kb``: not ``ru_maxrss``, which also
counts the benchmark process' own peak before the child's exec); the baseline is the child's RSS
after its imports, before the extract starts. Importing peaks higher for a moment, so a small
extract's peak is the imports' peak (``peak_rss_after_imports_mb``); ``rss_after_extract_mb`` shows
where it ended.
This is the extract's own footprint: an Airflow task process adds the task runner's memory on top.

``python -m benchmarks.memory SOURCE_URL WAREHOUSE_URL`` is the child; it prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks.common import Result, Workspace, say, vm_hwm_kb
from include.config import PROJECT_ROOT

TARGET_MB = 500


def run(ws: Workspace, n: int) -> Result:
    source_url = ws.erp_source(n)
    warehouse_url = ws.fresh_database("memory")
    say(f"memory: extract of {n:,} rows in a child process ...")
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.memory", source_url, warehouse_url],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    output = proc.stdout.read()
    proc.stdout.close()
    if proc.wait() != 0:
        raise RuntimeError(f"the extract child exited with code {proc.returncode}: {output[-2000:]}")
    child = json.loads(output.strip().splitlines()[-1])
    peak_mb = child["peak_rss_mb"]
    return Result(
        name="extract peak memory",
        figure=peak_mb,
        unit="MB",
        baseline=child["rss_after_imports_mb"],
        baseline_label="after imports",
        ratio=peak_mb / child["rss_after_imports_mb"],
        target=f"<= {TARGET_MB} MB",
        met=peak_mb <= TARGET_MB,
        details={"records": n, **child},
    )


def _current_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _child(source_url: str, warehouse_url: str) -> None:
    from include.extract.runner import extract_entity
    from include.registry import get_source

    source = get_source("erp")
    entity = source.entity("customer_master")
    after_imports = _current_rss_mb()
    peak_after_imports = vm_hwm_kb() / 1024
    started = time.perf_counter()
    result = extract_entity(source, entity, warehouse_url, source_db_url=source_url, full_refresh=True)
    print(
        json.dumps(
            {
                "rss_after_imports_mb": round(after_imports, 1),
                "peak_rss_after_imports_mb": round(peak_after_imports, 1),
                "extract_s": round(time.perf_counter() - started, 3),
                "rss_after_extract_mb": round(_current_rss_mb(), 1),
                "peak_rss_mb": round(vm_hwm_kb() / 1024, 1),
                "received": result.received,
                "inserted": result.inserted,
            }
        )
    )


if __name__ == "__main__":
    _child(*sys.argv[1:3])
