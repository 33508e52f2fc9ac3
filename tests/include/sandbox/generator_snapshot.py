"""A generated world's full state, for comparing two runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.include.sandbox.helpers import erp_rows


def snapshot(data_dir: Path, erp_url: str) -> dict:
    """Every file's bytes, every SQLite row and every ERP row of a generated world."""
    files = {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and p.parent.name in ("ground_truth", "marketing")
    }
    with sqlite3.connect(data_dir / "sandbox" / "apps.sqlite") as conn:
        tables = [
            r[0] for r in conn.execute("select name from sqlite_master where type = 'table' order by 1")
        ]
        apps = {t: conn.execute(f"select * from {t} order by 1").fetchall() for t in tables}
    erp = {t: erp_rows(erp_url, t) for t in ("customer_master", "sales_orders", "invoices")}
    return {"files": files, "apps": apps, "erp": erp}
