"""Incremental against full extract of the ERP customer master (a database source).

``erp.customer_master`` in a source database holds N rows (the sandbox's generated rows, copied; see
``Workspace.erp_source``). Timed: ``extract_entity`` with ``full_refresh=True`` into an empty
warehouse; then 1% of the rows get ``modified_time = now()`` and the incremental ``extract_entity``
runs. Both times include connecting, ``ensure_raw_table``, reading, landing and the commit.

``full_refresh=True`` does not advance the cursor (``record_batch(advance_cursor=False)``), so before
the incremental run the cursor is set from the full run's high-water mark with ``record_batch`` (what
the first scheduled incremental run would leave behind); without it the incremental run would read
everything again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg

from benchmarks.common import Result, Workspace, say
from include.extract.landing import read_high_water_mark, record_batch
from include.extract.runner import extract_entity
from include.registry import get_source

TARGET_RATIO = 0.05
CHANGED_SHARE = 0.01


def run(ws: Workspace, n: int) -> Result:
    source = get_source("erp")
    entity = source.entity("customer_master")
    source_url = ws.erp_source(n)
    warehouse_url = ws.fresh_database("incremental")

    ws.checkpoint(warehouse_url)
    say(f"incremental: full extract of {n:,} rows ...")
    started = time.perf_counter()
    full = extract_entity(source, entity, warehouse_url, source_db_url=source_url, full_refresh=True)
    full_s = time.perf_counter() - started

    with psycopg.connect(warehouse_url) as conn:
        cursor_seeded = read_high_water_mark(conn, source.name, entity.name) is None
        if cursor_seeded:
            record_batch(
                conn, full, sync_mode=entity.sync_mode, started_at=datetime.now(UTC), advance_cursor=True
            )
        conn.commit()

    changed = max(1, round(n * CHANGED_SHARE))
    with psycopg.connect(source_url) as conn:
        conn.execute(
            "update erp.customer_master set modified_time = now() where cust_no in "
            "(select cust_no from erp.customer_master order by md5(cust_no) limit %s)",
            (changed,),
        )
        conn.commit()
        conn.execute("analyze erp.customer_master")
        conn.commit()

    ws.checkpoint(warehouse_url)
    say(f"incremental: incremental extract after changing {changed:,} rows ...")
    started = time.perf_counter()
    incremental = extract_entity(source, entity, warehouse_url, source_db_url=source_url)
    incremental_s = time.perf_counter() - started

    ratio = incremental_s / full_s
    return Result(
        name="incremental vs full",
        figure=incremental_s,
        unit="s",
        baseline=full_s,
        baseline_label="full extract",
        ratio=ratio,
        ratio_unit="%",
        target=f"<= {TARGET_RATIO:.0%} of full",
        met=ratio <= TARGET_RATIO,
        details={
            "records": n,
            "changed_rows": changed,
            "full_s": round(full_s, 3),
            "incremental_s": round(incremental_s, 3),
            "full_rows_per_s": round(n / full_s),
            "full": {k: full.as_dict()[k] for k in ("received", "inserted", "duplicates", "quarantined")},
            "incremental": {
                k: incremental.as_dict()[k] for k in ("received", "inserted", "duplicates", "quarantined")
            },
            "cursor_seeded_after_full_refresh": cursor_seeded,
        },
    )
