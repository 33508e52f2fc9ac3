"""What the dashboards show, read from the warehouse as plain, JSON-ready data.

Every query names its columns (never ``select *``): the pages show profile, activity and
masked contact details, never a resident-ID hash or a credit code, whatever the relation holds.
Relations are quoted with ``psycopg.sql``; values are parameters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from include.bi.masking import mask_email, mask_phone

#: customer_360 columns on the profile card (no identity columns besides the name).
PROFILE_COLUMNS = (
    "customer_key",
    "customer_type",
    "customer_name",
    "mobile_e164",
    "phone_e164",
    "email",
    "province",
    "city",
    "source_systems",
    "lifecycle_stage",
    "has_marketing_opt_in",
    "order_count",
    "lifetime_value_cny",
    "average_order_value_cny",
    "first_order_date",
    "last_order_date",
    "rfm_score",
    "segment",
    "open_tickets",
    "complaints_90d",
    "open_receivables_cny",
    "overdue_receivables_cny",
    "segment_tags",
    "first_seen_at",
    "last_activity_on",
)
#: Golden-record attributes whose changes the history shows: customer_360's profile fields (never a
#: resident-ID hash, a credit code or the street address, which the wide BI row leaves out too).
HISTORY_COLUMNS = (
    "customer_type",
    "customer_name",
    "mobile_e164",
    "phone_e164",
    "email",
    "province",
    "city",
    "source_systems",
    "source_record_count",
    "lifecycle_stage",
    "has_marketing_opt_in",
)
#: A history of change rows (bi.customer_change_history) has these; else it is read as versions.
CHANGE_ROW_COLUMNS = ("customer_key", "change_type", "attribute", "old_value", "new_value", "changed_at")
VALID_FROM_COLUMNS = ("dbt_valid_from", "valid_from")
VALID_TO_COLUMNS = ("dbt_valid_to", "valid_to")
PHONE_COLUMNS = {"mobile_e164", "phone_e164"}
EMAIL_COLUMNS = {"email"}
#: Rows per customer and list embedded in the 360 page (the card shows the total beside it).
DETAIL_ROWS = 30
#: Fact columns each list of the 360 page shows.
TICKET_COLUMNS = ("ticket_id", "opened_at", "category", "is_complaint", "ticket_status", "subject")
RECEIVABLE_COLUMNS = ("invoice_id", "invoice_date", "due_date", "amount", "open_amount_cny", "days_overdue")
CONTRACT_COLUMNS = ("contract_no", "contract_amount", "approval_status", "submitted_at", "decided_at")
SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True)
class Relations:
    """Where the dashboards read: the BI schema (``bi`` views shaped like the marts), the golden
    record's history and the monitoring schema. ``history`` defaults to ``bi.customer_change_history``
    on the BI schema, else to the dbt snapshot ``snapshots.snap_dim_customer``."""

    schema: str = "bi"
    history: tuple[str, str] | None = None
    monitoring: str = "monitoring"

    def mart(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    @property
    def history_relation(self) -> tuple[str, str]:
        if self.history:
            return self.history
        return (
            ("bi", "customer_change_history") if self.schema == "bi" else ("snapshots", "snap_dim_customer")
        )


class MissingRelationError(RuntimeError):
    pass


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    return value


def masked(column: str, value: Any) -> Any:
    if column in PHONE_COLUMNS:
        return mask_phone(value)
    if column in EMAIL_COLUMNS:
        return mask_email(value)
    return jsonable(value)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: masked(k, v) for k, v in row.items()}


def _rows(conn: psycopg.Connection, query: sql.Composable, params: tuple = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [_clean(r) for r in cur.execute(query, params).fetchall()]


def relation_columns(conn: psycopg.Connection, schema: str, name: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 "
            "and not attisdropped order by attnum",
            (sql.Identifier(schema, name).as_string(conn),),
        ).fetchall()
    ]


def require(conn: psycopg.Connection, rel: Relations, names: tuple[str, ...]) -> None:
    missing = [
        f"{rel.schema}.{n}"
        for n in names
        if conn.execute("select to_regclass(%s)", (rel.mart(n).as_string(conn),)).fetchone()[0] is None
    ]
    if missing:
        hint = (
            " Build the BI layer first, or read the marts with --schema marts (the dashboards mask "
            "phones and emails themselves)."
            if rel.schema == "bi"
            else " Run the pipeline first (make demo)."
        )
        verb = "does" if len(missing) == 1 else "do"
        raise MissingRelationError(f"the dashboards read {', '.join(missing)}, which {verb} not exist.{hint}")


# ----------------------------------------------------------------------------------------------
# Overview (big screen)
# ----------------------------------------------------------------------------------------------

OVERVIEW_MARTS = (
    "customer_360",
    "lifecycle_stats",
    "monthly_order_trends",
    "customer_churn_risk",
    "customer_complaint_anomalies",
    "fct_service_tickets",
    "fct_receivables",
    "customer_alerts",
)


def overview_data(
    conn: psycopg.Connection, rel: Relations, months: int = 24, top: int = 10
) -> dict[str, Any]:
    """Everything the big-screen overview shows."""
    require(conn, rel, OVERVIEW_MARTS)
    c360 = rel.mart("customer_360")
    as_of = conn.execute(
        sql.SQL("select max(as_of_date) from {}").format(rel.mart("lifecycle_stats"))
    ).fetchone()[0]
    kpis = _rows(
        conn,
        sql.SQL(
            "select count(*) as customers, "
            "count(*) filter (where lifecycle_stage = 'active_customer') as active_customers, "
            "count(*) filter (where segment = 'vip') as vip_customers, "
            "coalesce(sum(open_receivables_cny), 0) as open_receivables_cny, "
            "coalesce(sum(overdue_receivables_cny), 0) as overdue_receivables_cny, "
            "count(*) filter (where overdue_receivables_cny > 0) as overdue_customers "
            "from {}"
        ).format(c360),
    )[0]
    trend = _rows(
        conn,
        sql.SQL(
            "select order_month, orders, ordering_customers, new_customers, gross_sales_cny, refunds_cny, "
            "net_sales_cny, average_order_value_cny from {} "
            "where order_month > (select max(order_month) from {}) - make_interval(months => %s) "
            "order by order_month"
        ).format(rel.mart("monthly_order_trends"), rel.mart("monthly_order_trends")),
        (months,),
    )
    last12 = trend[-12:]
    kpis["net_sales_12m_cny"] = round(sum(r["net_sales_cny"] or 0 for r in last12), 2)
    kpis["orders_12m"] = sum(r["orders"] or 0 for r in last12)
    alerts = _rows(
        conn,
        sql.SQL("select alert_type, severity, count(*) as n from {} group by 1, 2 order by 1, 2").format(
            rel.mart("customer_alerts")
        ),
    )
    kpis["alerts"] = sum(r["n"] for r in alerts)
    return {
        "as_of_date": jsonable(as_of),
        "kpis": kpis,
        "alerts": alerts,
        "province_segments": _rows(
            conn,
            sql.SQL(
                "select coalesce(province, '未知') as province, segment, count(*) as customers "
                "from {} group by 1, 2 order by 1, 2"
            ).format(c360),
        ),
        "lifecycle": _rows(
            conn,
            sql.SQL(
                "select lifecycle_stage, customers, customer_share, lifetime_value_cny from {} "
                "order by stage_order"
            ).format(rel.mart("lifecycle_stats")),
        ),
        "trend": trend,
        "churn_top": _rows(
            conn,
            sql.SQL(
                "select r.customer_key, c.customer_name, c.province, c.city, r.order_count, "
                "r.lifetime_value_cny, r.last_order_date, r.days_since_last_order "
                "from {} as r join {} as c using (customer_key) "
                "order by r.lifetime_value_cny desc nulls last, r.customer_key limit %s"
            ).format(rel.mart("customer_churn_risk"), c360),
            (top,),
        ),
        "churn_count": conn.execute(
            sql.SQL("select count(*) from {}").format(rel.mart("customer_churn_risk"))
        ).fetchone()[0],
        "complaint_weeks": _rows(
            conn,
            sql.SQL(
                "select date_trunc('week', opened_at)::date as week, count(*) filter (where is_complaint) "
                "as complaints, count(*) as tickets from {} "
                "where opened_at >= %s::date - 26 * 7 and opened_at < %s::date + 1 group by 1 order by 1"
            ).format(rel.mart("fct_service_tickets")),
            (as_of, as_of),
        )
        if as_of
        else [],
        "complaint_spikes": _rows(
            conn,
            sql.SQL(
                "select a.customer_key, c.customer_name, c.province, a.complaints_in_window, "
                "a.complaints_in_baseline, a.baseline_per_window, c.open_tickets "
                "from {} as a join {} as c using (customer_key) "
                "order by a.complaints_in_window desc, a.customer_key limit %s"
            ).format(rel.mart("customer_complaint_anomalies"), c360),
            (top,),
        ),
        "aging": _rows(
            conn,
            sql.SQL(
                "select bucket, count(*) as invoices, sum(open_amount_cny) as open_amount_cny from ("
                " select case when days_overdue <= 0 then '0 未到期' when days_overdue <= 30 then '1-30天' "
                " when days_overdue <= 60 then '31-60天' when days_overdue <= 90 then '61-90天' "
                " else '90天以上' end as bucket, open_amount_cny from {} where is_open) b "
                "group by bucket order by bucket"
            ).format(rel.mart("fct_receivables")),
        ),
        "overdue_top": _rows(
            conn,
            sql.SQL(
                "select r.customer_key, c.customer_name, c.province, count(*) as invoices, "
                "sum(r.open_amount_cny) as overdue_cny, max(r.days_overdue) as max_days_overdue "
                "from {} as r join {} as c using (customer_key) where r.is_open and r.days_overdue > 0 "
                "group by 1, 2, 3 order by overdue_cny desc, r.customer_key limit %s"
            ).format(rel.mart("fct_receivables"), c360),
            (top,),
        ),
        "health": pipeline_health(conn, rel),
    }


def pipeline_health(conn: psycopg.Connection, rel: Relations) -> list[dict[str, Any]]:
    """``monitoring.pipeline_health`` (one row per system), empty when monitoring is not set up."""
    health = sql.Identifier(rel.monitoring, "pipeline_health")
    if conn.execute("select to_regclass(%s)", (health.as_string(conn),)).fetchone()[0] is None:
        return []
    query = sql.SQL("select system, status, red_checks, amber_checks, summary from {} order by system")
    return _rows(conn, query.format(health))


# ----------------------------------------------------------------------------------------------
# Customer 360
# ----------------------------------------------------------------------------------------------

C360_MARTS = (
    "customer_360",
    "customer_alerts",
    "customer_crosswalk",
    "fct_orders",
    "fct_service_tickets",
    "fct_contracts",
    "fct_receivables",
)


def _details(
    conn: psycopg.Connection, relation: sql.Identifier, columns: tuple[str, ...], order: str, keys: list[str]
) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """The newest DETAIL_ROWS rows per customer of a fact, and each customer's total."""
    query = sql.SQL(
        "select * from (select customer_key, {cols}, count(*) over w_all as total_rows, "
        "row_number() over (partition by customer_key order by {order} desc nulls last) as rn "
        "from {rel} where customer_key = any(%s) window w_all as (partition by customer_key)) t "
        "where rn <= %s order by customer_key, rn"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        order=sql.Identifier(order),
        rel=relation,
    )
    rows: dict[str, list[dict]] = defaultdict(list)
    totals: dict[str, int] = {}
    for r in _rows(conn, query, (keys, DETAIL_ROWS)):
        totals[r["customer_key"]] = r.pop("total_rows")
        key = r.pop("customer_key")
        r.pop("rn")
        rows[key].append(r)
    return rows, totals


def customer_360_data(conn: psycopg.Connection, rel: Relations, max_customers: int) -> dict[str, Any]:
    """The customers the 360 page embeds (those with alerts first, then by lifetime value and
    recent activity) with their systems, orders, tickets, contracts, receivables, alerts and history."""
    require(conn, rel, C360_MARTS)
    total = conn.execute(sql.SQL("select count(*) from {}").format(rel.mart("customer_360"))).fetchone()[0]
    profiles = _rows(
        conn,
        sql.SQL(
            "with a as (select customer_key, count(*) as alert_count, max(case severity when 'high' then 3 "
            "when 'medium' then 2 else 1 end) as top_severity from {alerts} group by customer_key) "
            "select {cols}, coalesce(a.alert_count, 0) as alert_count from {c360} as c "
            "left join a using (customer_key) order by coalesce(a.top_severity, 0) desc, "
            "coalesce(a.alert_count, 0) desc, c.lifetime_value_cny desc nulls last, "
            "c.last_activity_on desc nulls last, c.customer_key limit %s"
        ).format(
            alerts=rel.mart("customer_alerts"),
            cols=sql.SQL(", ").join(sql.Identifier("c", col) for col in PROFILE_COLUMNS),
            c360=rel.mart("customer_360"),
        ),
        (max_customers,),
    )
    keys = [p["customer_key"] for p in profiles]
    systems: dict[str, list[dict]] = defaultdict(list)
    for r in _rows(
        conn,
        sql.SQL(
            "select customer_key, source_system, source_record_id from {} "
            "where customer_key = any(%s) order by customer_key, source_system, source_record_id"
        ).format(rel.mart("customer_crosswalk")),
        (keys,),
    ):
        systems[r.pop("customer_key")].append(r)
    alerts: dict[str, list[dict]] = defaultdict(list)
    for r in _rows(
        conn,
        sql.SQL(
            "select customer_key, alert_type, severity, reason, metric_value, alert_date from {} "
            "where customer_key = any(%s) order by customer_key, alert_type"
        ).format(rel.mart("customer_alerts")),
        (keys,),
    ):
        alerts[r.pop("customer_key")].append(r)
    alerts = {k: sorted(v, key=lambda a: -SEVERITY_RANK.get(a["severity"], 0)) for k, v in alerts.items()}
    orders, order_totals = _details(
        conn,
        rel.mart("fct_orders"),
        ("order_id", "order_date", "currency", "amount", "net_amount_cny", "order_status"),
        "order_date",
        keys,
    )
    tickets, ticket_totals = _details(
        conn,
        rel.mart("fct_service_tickets"),
        TICKET_COLUMNS,
        "opened_at",
        keys,
    )
    contracts, contract_totals = _details(
        conn,
        rel.mart("fct_contracts"),
        CONTRACT_COLUMNS,
        "submitted_at",
        keys,
    )
    receivables, receivable_totals = _details(
        conn,
        rel.mart("fct_receivables"),
        RECEIVABLE_COLUMNS,
        "invoice_date",
        keys,
    )
    history = change_history(conn, rel, keys)
    customers = []
    for p in profiles:
        key = p["customer_key"]
        customers.append(
            {
                "profile": p,
                "systems": systems.get(key, []),
                "alerts": alerts.get(key, []),
                "orders": orders.get(key, []),
                "orders_total": order_totals.get(key, 0),
                "tickets": tickets.get(key, []),
                "tickets_total": ticket_totals.get(key, 0),
                "contracts": contracts.get(key, []),
                "contracts_total": contract_totals.get(key, 0),
                "receivables": receivables.get(key, []),
                "receivables_total": receivable_totals.get(key, 0),
                "history": history.get(key, []),
            }
        )
    return {"total_customers": total, "embedded": len(customers), "customers": customers}


def change_history(conn: psycopg.Connection, rel: Relations, keys: list[str]) -> dict[str, list[dict]]:
    """Per customer, newest first: events (created, changed, closed) with their changes
    (attribute, old, new and, when known, the source system of the new value).

    Reads either shape of history, only the attributes of HISTORY_COLUMNS:
    - change rows, as ``bi.customer_change_history``: customer_key, change_type, attribute,
      old_value, new_value, changed_at (optional version_number, source_system);
    - versions, as the dbt snapshot: one row per customer_key and version with its valid-from
      (and valid-to) time and the attributes.
    A missing relation means no history.
    """
    schema, name = rel.history_relation
    columns = relation_columns(conn, schema, name)
    if set(CHANGE_ROW_COLUMNS) <= set(columns):
        return _history_from_change_rows(conn, sql.Identifier(schema, name), columns, keys)
    valid_from = next((c for c in VALID_FROM_COLUMNS if c in columns), None)
    if "customer_key" not in columns or valid_from is None:
        return {}
    valid_to = next((c for c in VALID_TO_COLUMNS if c in columns), None)
    attributes = [c for c in HISTORY_COLUMNS if c in columns]
    query = sql.SQL(
        "select customer_key, {vf} as valid_from, {vt} as valid_to, {attrs} from {rel} "
        "where customer_key = any(%s) order by customer_key, {vf}"
    ).format(
        vf=sql.Identifier(valid_from),
        vt=sql.Identifier(valid_to) if valid_to else sql.SQL("null::timestamptz"),
        attrs=sql.SQL(", ").join(map(sql.Identifier, attributes)),
        rel=sql.Identifier(schema, name),
    )
    versions: dict[str, list[dict]] = defaultdict(list)
    for r in _rows(conn, query, (keys,)):
        versions[r.pop("customer_key")].append(r)
    history: dict[str, list[dict]] = {}
    for key, rows in versions.items():
        events = []
        previous: dict | None = None
        for row in rows:
            if previous is None:
                changes = [
                    {"attribute": a, "old": None, "new": row[a]}
                    for a in attributes
                    if row[a] not in (None, "")
                ]
                events.append({"at": row["valid_from"], "kind": "created", "changes": changes})
            else:
                changes = [
                    {"attribute": a, "old": previous[a], "new": row[a]}
                    for a in attributes
                    if previous[a] != row[a]
                ]
                if changes:
                    events.append({"at": row["valid_from"], "kind": "changed", "changes": changes})
            previous = row
        if previous is not None and previous["valid_to"]:
            events.append({"at": previous["valid_to"], "kind": "closed", "changes": []})
        history[key] = events[::-1]
    return history


def _history_from_change_rows(
    conn: psycopg.Connection, relation: sql.Identifier, columns: list[str], keys: list[str]
) -> dict[str, list[dict]]:
    """Change rows (one per customer, version and attribute) grouped into events, newest first."""
    source = sql.Identifier("source_system") if "source_system" in columns else sql.SQL("null::text")
    version = sql.Identifier("version_number") if "version_number" in columns else sql.SQL("null::int")
    query = sql.SQL(
        "select customer_key, changed_at, change_type, {version} as version_number, attribute, "
        "old_value, new_value, {source} as source_system from {rel} "
        "where customer_key = any(%s) and (attribute is null or attribute = any(%s)) "
        "order by customer_key, changed_at desc, version_number desc nulls last, attribute"
    ).format(version=version, source=source, rel=relation)
    history: dict[str, list[dict]] = defaultdict(list)
    with conn.cursor() as cur:
        rows = cur.execute(query, (keys, list(HISTORY_COLUMNS))).fetchall()
    for key, at, kind, version_number, attribute, old, new, source_system in rows:
        events = history[key]
        if not events or (events[-1]["at"], events[-1]["kind"], events[-1]["version"]) != (
            jsonable(at),
            kind,
            version_number,
        ):
            events.append({"at": jsonable(at), "kind": kind, "version": version_number, "changes": []})
        if attribute is not None:
            events[-1]["changes"].append(
                {
                    "attribute": attribute,
                    "old": masked(attribute, old),
                    "new": masked(attribute, new),
                    "source": source_system,
                }
            )
    for events in history.values():
        for event in events:
            del event["version"]
    return dict(history)
