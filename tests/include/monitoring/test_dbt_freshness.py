"""`dbt source freshness` against a real warehouse, its results kept in ops.freshness_checks."""

from __future__ import annotations

import psycopg

from include.extract.landing import ensure_raw_table
from include.monitoring.dbt_freshness import record_dbt_freshness, run_dbt_source_freshness
from include.registry import load_sources


def test_dbt_source_freshness_results_are_stored_per_source_table(fresh_db):
    crm = next(s for s in load_sources() if s.name == "crm")
    with psycopg.connect(fresh_db.url) as conn:
        for source in load_sources():
            for entity in source.entities:
                ensure_raw_table(conn, source.raw_schema, entity.name)
        insert = (
            "insert into {} (_batch_id, _loaded_at, _source, _record_id, _content_hash, payload) "
            "values ('b1', now() - %s * interval '1 hour', 'crm', '1', 'h', '{{}}')"
        )
        conn.execute(insert.format("raw_crm.accounts"), (crm.freshness.warn_after_hours + 0.5,))
        conn.execute(insert.format("raw_crm.contacts"), (0.1,))
        conn.execute(insert.format("raw_crm.opportunities"), (crm.freshness.error_after_hours + 1,))
        conn.commit()

    results = run_dbt_source_freshness(fresh_db.url)
    by_table = {(r.source, r.entity): r for r in results}
    assert len(results) == sum(len(s.entities) for s in load_sources())
    assert by_table[("crm", "accounts")].status == "warn"
    assert by_table[("crm", "contacts")].status == "pass"
    assert by_table[("crm", "opportunities")].status == "error"
    assert by_table[("erp", "invoices")].status == "error"  # never loaded
    assert by_table[("erp", "invoices")].max_loaded_at is None
    assert (
        by_table[("crm", "accounts")].warn_after_hours,
        by_table[("crm", "accounts")].error_after_hours,
    ) == (
        crm.freshness.warn_after_hours,
        crm.freshness.error_after_hours,
    )

    with psycopg.connect(fresh_db.url) as conn:
        record_dbt_freshness(conn, results)
        record_dbt_freshness(conn, results)  # a second run is history, not an overwrite
        rows = conn.execute(
            "select status, count(*) from ops.freshness_checks where checked_by = 'dbt' "
            "and source = 'crm' group by status order by status"
        ).fetchall()
    assert rows == [("error", 2), ("pass", 2), ("warn", 2)]
