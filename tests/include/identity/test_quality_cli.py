"""``python -m include.cli quality`` (what ``make quality`` runs) against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from include.config import PROJECT_ROOT, PgUrl
from tests.include.identity.test_quality import TRUTH, write_crosswalk, write_truth


def quality(db: PgUrl, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"C360_WAREHOUSE_URL": db.url}
    return subprocess.run(
        [sys.executable, "-m", "include.cli", "quality", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prints_the_figures_and_the_targets(fresh_db: PgUrl, tmp_path: Path):
    truth = write_truth(tmp_path, TRUTH)
    write_crosswalk(fresh_db.url, {k: f"K{v}" for k, v in TRUTH.items()})
    proc = quality(fresh_db, "--ground-truth", str(truth), "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pairwise precision:  1.0000   (target >= 0.995: met)" in proc.stdout
    assert "pairwise recall:     1.0000   (target >= 0.97: met)" in proc.stdout
    assert "largest cluster:     3 records" in proc.stdout


def test_check_fails_when_a_target_is_missed(fresh_db: PgUrl, tmp_path: Path):
    truth = write_truth(tmp_path, TRUTH)
    write_crosswalk(fresh_db.url, {k: "ONE" for k in TRUTH})
    assert quality(fresh_db, "--ground-truth", str(truth)).returncode == 0
    proc = quality(fresh_db, "--ground-truth", str(truth), "--check")
    assert proc.returncode == 1
    assert "(target >= 0.995: NOT met)" in proc.stdout
    assert "1 clusters hold more than one real customer (11 false pairs)" in proc.stdout


def test_no_crosswalk_is_a_clear_error(fresh_db: PgUrl, tmp_path: Path):
    proc = quality(fresh_db, "--ground-truth", str(write_truth(tmp_path, TRUTH)))
    assert proc.returncode == 2
    assert "marts.customer_crosswalk does not exist" in proc.stdout
