"""The customer 360 marts: full `dbt build` time per layer, an incremental build after a 1% change,
and customer 360 lookups by key and by phone.

Raw landings for C customers are synthesised in SQL (generate_series) in the shape the extractors
land (``raw_<source>.<entity>``, one JSONB payload per record version): every customer in the CRM;
80% also in the ERP with on average ``orders_per_customer`` orders over two years, 80% of them
invoiced; 40% callers with one or two tickets (a quarter complaints); 30% in the OA archive with a
contract approval; 30% marketing leads. A customer's records share its mobile, so identity resolution
links them (at most five records per value). The sandbox generator would take hours at 1M customers;
this takes about a minute and exercises the same models.

Timed:

- ``full``: ``dbt build`` (models, tests, unit tests, snapshot) into an empty warehouse; per layer,
  the summed execution time of its models and their tests from ``run_results.json`` (two dbt threads,
  so layer sums add up to more than the wall time).
- ``incremental``: 1% of the orders get a new landed version and 1% new orders land
  (all for existing customers); then ``dbt build`` again.
  The customer-entity staging tables, identity resolution and the incremental marts (the facts,
  crosswalk, dim_customer, conflicts, link evidence) work on what changed; staging views, snapshots,
  customer_360 and the rule marts are rebuilt or rechecked in full, so the whole build is compared,
  and so is fct_orders alone. The details list the slowest nodes of both builds.
- ``lookup``: p50/p95 over ``lookups`` queries of ``marts.customer_360`` by ``customer_key`` and by
  ``mobile_e164`` (random existing values, one connection, prepared statements), after ``analyze``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.common import AS_OF, Result, Workspace, say
from include.config import DBT_PROJECT_DIR, PgUrl
from include.extract.landing import ensure_raw_table
from include.registry import load_sources

TARGET_INCREMENTAL_RATIO = 0.10
TARGET_LOOKUP_P95_MS = 20.0
CHANGED_SHARE = 0.01
DBT = Path(sys.executable).with_name("dbt")
LAYERS = ("staging", "intermediate", "marts", "snapshots")

# Each statement inserts one raw table from generate_series; %(n)s customers, %(orders)s orders.
# Customer i: mobile 139 + i (8 digits), company 基准<i>号科技有限公司, ERP number E<i> when i % 5 <> 0.
_PAYLOAD_TS = "to_char(%s, 'YYYY-MM-DD\"T\"HH24:MI:SS+08:00')"
RAW_INSERTS: dict[str, str] = {
    "raw_crm.accounts": """
        select 'A' || i, jsonb_build_object('id', 'A' || i, 'account_name', '基准' || i || '号科技有限公司',
            'account_type', 'company', 'phone', '139' || lpad(i::text, 8, '0'),
            'email', 'c' || i || '@example.cn', 'province', '广东', 'city', '深圳',
            'created_at', {created}, 'updated_at', {created}), created
        from (select i, %(as_of)s::timestamptz - (i %% 700) * interval '1 day' as created
              from generate_series(1, %(n)s::int) as i) as s""",
    "raw_erp.customer_master": """
        select 'E' || i, jsonb_build_object('cust_no', 'E' || i, 'cust_name', '基准' || i || '号科技有限公司',
            'cust_type', 'C', 'contact_tel', '139-' || lpad(i::text, 8, '0'), 'province', '广东省',
            'city', '深圳市', 'credit_limit', 100000, 'created_time', {created}, 'modified_time', {created}),
            created
        from (select i, %(as_of)s::timestamptz - (i %% 700) * interval '1 day' as created
              from generate_series(1, %(n)s::int) as i where i %% 5 <> 0) as s""",
    "raw_erp.sales_orders": """
        select 'SO' || k, jsonb_build_object('order_no', 'SO' || k, 'cust_no', 'E' || c,
            'order_date', to_char(d, 'YYYY-MM-DD'), 'amount', 500 + (k::bigint * 7919) %% 200000,
            'currency', case when k %% 20 = 0 then 'USD' else 'CNY' end,
            'status', case when k %% 13 = 0 then 'cancelled' when k %% 97 = 0 then 'refunded'
                           else 'completed' end, 'modified_time', {d}), d
        from (select k, c, %(as_of)s::timestamptz - ((k * 31) %% 730) * interval '1 day' as d
              from (select k, 1 + (k * 7) %% %(n)s as c from generate_series(1, %(orders)s::int) as k) as o
              where c %% 5 <> 0) as s""",
    "raw_erp.invoices": """
        select 'INV' || k, jsonb_build_object('invoice_no', 'INV' || k, 'cust_no', 'E' || c,
            'order_no', 'SO' || k, 'invoice_date', to_char(d, 'YYYY-MM-DD'),
            'due_date', to_char(d + interval '30 days', 'YYYY-MM-DD'),
            'amount', 500 + (k::bigint * 7919) %% 200000,
            'paid_amount', case when k %% 4 = 0 then 0 else 500 + (k::bigint * 7919) %% 200000 end,
            'paid_date', case when k %% 4 = 0 then null
                              else to_char(d + interval '20 days', 'YYYY-MM-DD') end,
            'status', case when k %% 4 = 0 then 'issued' else 'paid' end, 'modified_time', {d}), d
        from (select k, c, %(as_of)s::timestamptz - ((k * 31) %% 730) * interval '1 day' as d
              from (select k, 1 + (k * 7) %% %(n)s as c from generate_series(1, %(orders)s::int) as k) as o
              where c %% 5 <> 0 and k %% 5 <> 0 and k %% 13 <> 0) as s""",
    "raw_callcenter.callers": """
        select 'CC' || i, jsonb_build_object('caller_id', 'CC' || i, 'name', '联系人' || i,
            'phone', '139 ' || lpad(i::text, 8, '0'), 'company_name', '基准' || i || '号科技',
            'updated_at', {d}), d
        from (select i, %(as_of)s::timestamptz - (i %% 300) * interval '1 day' as d
              from generate_series(1, %(n)s::int) as i where i %% 5 in (1, 2)) as s""",
    "raw_callcenter.tickets": """
        select 'TK' || i || '-' || t, jsonb_build_object('ticket_id', 'TK' || i || '-' || t,
            'caller_id', 'CC' || i, 'priority', 'normal',
            'category', case when (i + t) %% 4 = 0 then 'complaint' else 'inquiry' end,
            'status', case when t = 2 then 'open' else 'closed' end, 'subject', '咨询',
            'opened_at', {d}, 'closed_at', case when t = 2 then null else {closed} end,
            'updated_at', {d}), d
        from (select i, t, %(as_of)s::timestamptz - ((i * t) %% 200) * interval '1 day' as d
              from generate_series(1, %(n)s::int) as i cross join generate_series(1, 2) as t
              where i %% 5 in (1, 2) and (t = 1 or i %% 3 = 0)) as s""",
    "raw_oa.customer_archive": """
        select 'OA' || i, jsonb_build_object('archive_id', 'OA' || i,
            'customer_name', '基准' || i || '号科技有限公司',
            'contact_phone', '+86 139' || lpad(i::text, 8, '0'), 'updated_at', {d}), d
        from (select i, %(as_of)s::timestamptz - (i %% 500) * interval '1 day' as d
              from generate_series(1, %(n)s::int) as i where i %% 10 in (3, 4, 5)) as s""",
    "raw_oa.contract_approvals": """
        select 'AP' || i, jsonb_build_object('approval_id', 'AP' || i, 'archive_id', 'OA' || i,
            'contract_no', 'HT-' || i, 'contract_amount', 10000 + i %% 90000, 'status', 'approved',
            'submitted_at', {d}, 'decided_at', {d}, 'updated_at', {d}), d
        from (select i, %(as_of)s::timestamptz - (i %% 500) * interval '1 day' as d
              from generate_series(1, %(n)s::int) as i where i %% 10 in (3, 4, 5)) as s""",
    "raw_marketing.leads": """
        select 'bench:' || i, jsonb_build_object('lead_id', 'bench:' || i, 'lead_name', '联系人' || i,
            'mobile', '139' || lpad(i::text, 8, '0'), 'company_name', '基准' || i || '号科技',
            'campaign_code', 'BENCH', 'lead_source', '展会',
            'created_at', to_char(d, 'YYYY-MM-DD'), 'source_file', 'bench.csv', 'source_row', i), d
        from (select i, %(as_of)s::timestamptz - (i %% 400) * interval '1 day' as d
              from generate_series(1, %(n)s::int) as i where i %% 10 in (5, 6, 7)) as s""",
}


def _insert_sql(table: str, select: str, batch: str, history: bool = False) -> sql.Composed:
    # history: landed an hour after each source change (at the latest a day ago), as the hourly
    # extracts would have; otherwise landed now
    landed = sql.SQL(
        "least(r.updated + interval '1 hour', now() - interval '1 day')" if history else "clock_timestamp()"
    )
    select = select.format(
        created=_PAYLOAD_TS % "created", d=_PAYLOAD_TS % "d", closed=_PAYLOAD_TS % "(d + interval '5 hours')"
    )
    schema, name = table.split(".")
    return sql.SQL(
        "insert into {table} (_batch_id, _loaded_at, _source, _record_id, _content_hash, "
        "_source_updated_at, payload) "
        "select {batch}, {landed}, {source}, r.id, "
        "md5(r.payload::text), r.updated, r.payload from ({select}) as r (id, payload, updated)"
    ).format(
        table=sql.Identifier(schema, name),
        batch=sql.Literal(batch),
        landed=landed,
        source=sql.Literal(schema.removeprefix("raw_")),
        select=sql.SQL(select),  # the RAW_INSERTS templates above: our own SQL
    )


def land_raw(url: str, customers: int, orders: int) -> dict[str, int]:
    """Create every registry raw table and fill the synthetic landings; returns rows per table."""
    params = {"n": customers, "orders": orders, "as_of": AS_OF}
    rows = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for source in load_sources():
            for entity in source.entities:
                ensure_raw_table(conn, source.raw_schema, entity.name)
        for table, select in RAW_INSERTS.items():
            rows[table] = conn.execute(_insert_sql(table, select, "bench-1", history=True), params).rowcount
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(*table.split("."))))
    return rows


def change_one_percent(url: str, customers: int, orders: int) -> int:
    """1% of the orders land a new version (amount +1, a day later); 1% new orders land."""
    share = max(1, int(orders * CHANGED_SHARE))
    with psycopg.connect(url, autocommit=True) as conn:
        changed = conn.execute(
            "insert into raw_erp.sales_orders (_batch_id, _loaded_at, _source, _record_id, _content_hash, "
            "_source_updated_at, payload) "
            "select 'bench-2', clock_timestamp(), 'erp', _record_id, md5(p::text), _source_updated_at + "
            "interval '1 day', p from (select _record_id, _source_updated_at, jsonb_set(payload, '{amount}', "
            "to_jsonb((payload ->> 'amount')::numeric + 1)) as p from raw_erp.sales_orders "
            "where _seq %% %(every)s = 0) as s",
            {"every": max(1, round(1 / CHANGED_SHARE))},
        ).rowcount
        select = RAW_INSERTS["raw_erp.sales_orders"].replace(
            "generate_series(1, %(orders)s::int)", "generate_series(%(from)s::int, %(to)s::int)"
        )
        assert select != RAW_INSERTS["raw_erp.sales_orders"], "the orders insert changed shape"
        new = conn.execute(
            _insert_sql("raw_erp.sales_orders", select, "bench-2"),
            {"n": customers, "from": orders + 1, "to": orders + share, "as_of": AS_OF},
        ).rowcount
        conn.execute("analyze raw_erp.sales_orders")
    return changed + new


def dbt_build(db: PgUrl, workdir: Path, *extra: str) -> tuple[float, dict]:
    env = {
        **os.environ,
        "C360_WH_HOST": db.host,
        "C360_WH_PORT": str(db.port),
        "C360_WH_USER": db.user,
        "C360_WH_PASSWORD": db.password,
        "C360_WH_DBNAME": db.dbname,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    cmd = [str(DBT), "build", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
           "--target-path", str(workdir / "target"), "--log-path", str(workdir / "logs"),
           "--vars", json.dumps({"as_of_date": AS_OF}), *extra]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{proc.stdout[-4000:]}")
    results = json.loads((workdir / "target" / "run_results.json").read_text())["results"]
    return wall, results


def per_layer(results: list[dict], manifest: dict) -> dict[str, float]:
    """Summed execution seconds per layer: a model's own time plus its tests' (attached to the model)."""
    nodes = manifest["nodes"]
    layer_of: dict[str, str] = {}
    for uid, node in nodes.items():
        if node["resource_type"] in ("model", "snapshot"):
            # history kept by models (models/history: the snapshots schema) counts with the snapshots
            history = node["resource_type"] == "snapshot" or node["fqn"][1] == "history"
            layer_of[uid] = "snapshots" if history else node["fqn"][1]
    sums = dict.fromkeys(LAYERS, 0.0)
    for r in results:
        uid = r["unique_id"]
        node = nodes.get(uid) or manifest.get("unit_tests", {}).get(uid)
        owner = uid
        if node and node.get("resource_type") in ("test", "unit_test"):
            attached = node.get("attached_node") or (node.get("depends_on", {}).get("nodes") or [uid])[-1]
            owner = attached
        layer = layer_of.get(owner)
        if layer in sums:
            sums[layer] += r.get("execution_time") or 0.0
    return {k: round(v, 2) for k, v in sums.items()}


def slowest_nodes(results: list[dict], count: int = 12) -> list[list]:
    """The ``count`` nodes (models, tests, snapshots) that took longest: [name, seconds]."""
    timed = sorted(results, key=lambda r: r.get("execution_time") or 0.0, reverse=True)[:count]
    return [[r["unique_id"].split(".", 2)[-1], round(r.get("execution_time") or 0.0, 2)] for r in timed]


def lookups(url: str, count: int) -> dict[str, float]:
    rng = random.Random(7)
    with psycopg.connect(url) as conn:
        conn.execute("analyze marts.customer_360")
        keys = [
            k
            for (k,) in conn.execute(
                "select customer_key from marts.customer_360 order by random() limit %s", (count,)
            )
        ]
        mobiles = [m for (m,) in conn.execute(
            "select mobile_e164 from marts.customer_360 where mobile_e164 is not null "
            "order by random() limit %s",
            (count,))]  # fmt: skip
        out = {}
        for name, column, values in (("by_key", "customer_key", keys), ("by_mobile", "mobile_e164", mobiles)):
            rng.shuffle(values)
            times = []
            for value in values:
                started = time.perf_counter()
                rows = conn.execute(
                    sql.SQL("select * from marts.customer_360 where {} = %s").format(sql.Identifier(column)),
                    (value,),
                    prepare=True,
                ).fetchall()
                times.append((time.perf_counter() - started) * 1000)
                assert rows, value
            times.sort()
            out[f"{name}_p50_ms"] = round(statistics.median(times), 3)
            out[f"{name}_p95_ms"] = round(times[int(len(times) * 0.95) - 1], 3)
        plan = conn.execute(
            "explain select * from marts.customer_360 where mobile_e164 = %s", (mobiles[0],)
        ).fetchall()
        out["mobile_plan"] = plan[0][0].split("  (")[0]
    return out


def run(ws: Workspace, customers: int, orders_per_customer: int = 5, lookup_count: int = 500) -> Result:
    orders = customers * orders_per_customer
    url = ws.fresh_database("marts")
    db = PgUrl.parse(url)
    workdir = Path(tempfile.mkdtemp(prefix="c360_bench_marts_", dir=ws.dir))
    say(f"marts: landing {customers:,} synthetic customers, {orders:,} orders ...")
    started = time.perf_counter()
    raw_rows = land_raw(url, customers, orders)
    land_s = time.perf_counter() - started
    ws.checkpoint(url)

    say("marts: full dbt build ...")
    full_s, full_results = dbt_build(db, workdir)
    manifest = json.loads((workdir / "target" / "manifest.json").read_text())
    layers = per_layer(full_results, manifest)
    fct_full = next(r["execution_time"] for r in full_results if r["unique_id"].endswith(".fct_orders"))

    changed = change_one_percent(url, customers, orders)
    ws.checkpoint(url)
    say(f"marts: incremental dbt build after {changed:,} changed or new orders ...")
    incr_s, incr_results = dbt_build(db, workdir)
    fct_incr = next(r["execution_time"] for r in incr_results if r["unique_id"].endswith(".fct_orders"))
    incr_layers = per_layer(incr_results, manifest)

    say(f"marts: {lookup_count} lookups by key and by mobile ...")
    lookup = lookups(url, lookup_count)
    with psycopg.connect(url) as conn:
        built = dict(conn.execute(
            "select 'customers', count(*) from marts.dim_customer union all "
            "select 'orders', count(*) from marts.fct_orders").fetchall())  # fmt: skip

    ratio = incr_s / full_s
    p95 = max(lookup["by_key_p95_ms"], lookup["by_mobile_p95_ms"])
    return Result(
        name="marts",
        figure=incr_s,
        unit="s",
        target=(
            f"incremental <= {TARGET_INCREMENTAL_RATIO:.0%} of full; "
            f"lookup p95 <= {TARGET_LOOKUP_P95_MS:.0f} ms"
        ),
        met=ratio <= TARGET_INCREMENTAL_RATIO and p95 <= TARGET_LOOKUP_P95_MS,
        baseline=full_s,
        baseline_label="full dbt build",
        ratio=ratio,
        ratio_unit="%",
        details={
            "synthetic_customers": customers,
            "raw_rows": raw_rows,
            "built": built,
            "landing_s": round(land_s, 1),
            "full_build_s": round(full_s, 1),
            "full_layer_node_s": layers,
            "full_slowest_nodes_s": slowest_nodes(full_results),
            "changed_orders": changed,
            "incremental_build_s": round(incr_s, 1),
            "incremental_layer_node_s": incr_layers,
            "incremental_slowest_nodes_s": slowest_nodes(incr_results),
            "fct_orders_full_s": round(fct_full, 2),
            "fct_orders_incremental_s": round(fct_incr, 2),
            "fct_orders_ratio": round(fct_incr / fct_full, 3) if fct_full else None,
            **lookup,
            "lookup_p95_ms": p95,
        },
    )
