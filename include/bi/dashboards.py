"""Self-contained HTML dashboards from the warehouse: the customer 360 view and the big-screen overview.

    python -m include.cli dashboards              # build from the current warehouse, serve, print the URL
    write_dashboards(conn, out_dir)               # what the BI refresh calls after every refresh

Each page is one HTML file with its data, styles, scripts and plotly.js inlined: it opens from
disk, a file share or a mail attachment with no network at all. Both read the ``bi`` schema (the
marts with masked contact details) by default; phones and emails are masked again when rendered.

Scale: the overview is aggregates, its size does not grow with the customer base. The 360 page
embeds at most ``max_customers`` customers (default 5,000): every customer with an alert first
(high severity first), then by lifetime value and recent activity, and says so on the page; at
demo scale (2,000) that is everyone. Any other customer of a large base is one indexed lookup
on ``customer_360`` by key or phone in a BI tool.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import psycopg
from jinja2 import Environment, PackageLoader, select_autoescape
from plotly.offline import get_plotlyjs

from include.bi.labels import VALUE_LABELS, load_labels
from include.bi.warehouse_data import Relations, customer_360_data, jsonable, overview_data
from include.config import data_dir
from include.monitoring.bi import data_as_of
from include.registry import load_sources

DEFAULT_MAX_CUSTOMERS = 5000
CHINA_TZ = ZoneInfo("Asia/Shanghai")
PAGES = {
    "overview": "overview.html",
    "customer_360": "customer_360.html",
}
SEGMENT_COLORS = {"vip": "#f6c343", "regular": "#35d0ff", "win_back": "#ff7a59", "no_orders": "#6b7fa8"}
#: Plotly layout shared by the dark big-screen charts.
DARK = {
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"color": "#c9d6f0", "size": 13},
    "margin": {"l": 48, "r": 16, "t": 8, "b": 36},
    "legend": {"orientation": "h", "y": 1.12, "x": 0, "bgcolor": "rgba(0,0,0,0)"},
    "xaxis": {"gridcolor": "rgba(120,150,200,0.12)", "zeroline": False},
    "yaxis": {"gridcolor": "rgba(120,150,200,0.12)", "zeroline": False},
}


#: The schema the BI refresh's dashboards read (the masked ``bi`` views unless told otherwise).
DASHBOARD_SCHEMA_ENV = "C360_DASHBOARD_SCHEMA"


def default_output_dir() -> Path:
    return data_dir() / "dashboards"


def dashboard_relations() -> Relations:
    """What the BI refresh's dashboards read: schema ``C360_DASHBOARD_SCHEMA`` (default ``bi``)."""
    return Relations(schema=os.environ.get(DASHBOARD_SCHEMA_ENV, "bi"))


@dataclass(frozen=True)
class DashboardBuild:
    out_dir: Path
    pages: dict[str, Path]
    generated_at: datetime
    data_as_of: datetime | None
    customers_embedded: int
    customers_total: int


def cny(value: float | int | None, digits: int = 1) -> str:
    """Amounts the way a Chinese business reader scans them: ``¥1,234``, ``¥12.3万``, ``¥1.20亿``."""
    if value is None:
        return "–"
    v = float(value)
    if abs(v) >= 1e8:
        return f"¥{v / 1e8:,.2f}亿"
    if abs(v) >= 1e4:
        return f"¥{v / 1e4:,.{digits}f}万"
    return f"¥{v:,.0f}"


def beijing_time(value: datetime) -> str:
    """A timestamp in China Standard Time, the readers' clock: ``2026-11-25 18:05 (北京时间)``."""
    return f"{value.astimezone(CHINA_TZ):%Y-%m-%d %H:%M} (北京时间)"


def value_label(value: str | None, kind: str) -> str:
    """The Chinese business label of an enum value (``vip`` -> ``VIP``, ``churn_risk`` -> ``流失风险``)."""
    if value is None:
        return "–"
    return VALUE_LABELS.get(kind, {}).get(value, value)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("include.bi", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["cny"] = cny
    env.filters["bjt"] = beijing_time
    env.filters["num"] = lambda v: "–" if v is None else f"{v:,}"
    env.filters["value_label"] = value_label
    return env


def script_json(value: Any) -> str:
    """JSON safe to inline in a <script> element (no ``</script>`` or ``<!--`` can close it)."""
    text = json.dumps(value, ensure_ascii=False, default=jsonable, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _figure(fig: go.Figure, **layout: Any) -> dict[str, Any]:
    fig.update_layout(DARK)
    fig.update_layout(**layout)
    return json.loads(fig.to_json())


def overview_figures(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The overview's charts as plotly figure JSON (data + layout)."""
    seg_label = VALUE_LABELS["segment"]
    totals: dict[str, int] = {}
    for r in data["province_segments"]:
        totals[r["province"]] = totals.get(r["province"], 0) + r["customers"]
    provinces = sorted(totals, key=lambda p: (-totals[p], p))[:12][::-1]  # biggest at the top
    province_fig = go.Figure()
    for segment in ("vip", "regular", "win_back", "no_orders"):
        counts = {r["province"]: r["customers"] for r in data["province_segments"] if r["segment"] == segment}
        province_fig.add_bar(
            y=provinces,
            x=[counts.get(p, 0) for p in provinces],
            name=seg_label[segment],
            orientation="h",
            marker_color=SEGMENT_COLORS[segment],
        )
    trend = data["trend"]
    trend_fig = go.Figure()
    trend_fig.add_bar(
        x=[r["order_month"] for r in trend],
        y=[round((r["net_sales_cny"] or 0) / 1e4, 1) for r in trend],
        name="净销售额（万元）",
        marker_color="#35d0ff",
        hovertemplate="%{x|%Y-%m}<br>净销售额 %{y:,.1f} 万元<extra></extra>",
    )
    trend_fig.add_scatter(
        x=[r["order_month"] for r in trend],
        y=[r["orders"] for r in trend],
        name="订单数",
        yaxis="y2",
        mode="lines+markers",
        line={"color": "#f6c343", "width": 2},
        hovertemplate="%{x|%Y-%m}<br>订单 %{y:,}<extra></extra>",
    )
    lifecycle = data["lifecycle"]
    lifecycle_fig = go.Figure(
        go.Funnel(
            y=[value_label(r["lifecycle_stage"], "lifecycle_stage") for r in lifecycle],
            x=[r["customers"] for r in lifecycle],
            textinfo="value+percent total",
            marker={"color": ["#6b7fa8", "#4f8cff", "#35d0ff", "#f6c343", "#ff7a59"][: len(lifecycle)]},
            connector={"line": {"color": "rgba(120,150,200,0.3)"}},
        )
    )
    weeks = data["complaint_weeks"]
    complaints_fig = go.Figure()
    complaints_fig.add_bar(
        x=[r["week"] for r in weeks],
        y=[r["tickets"] for r in weeks],
        name="工单",
        marker_color="rgba(79,140,255,0.45)",
    )
    complaints_fig.add_scatter(
        x=[r["week"] for r in weeks],
        y=[r["complaints"] for r in weeks],
        name="投诉",
        mode="lines+markers",
        line={"color": "#ff5c7a", "width": 2},
    )
    aging = [r for r in data["aging"] if not r["bucket"].startswith("0")]
    aging_fig = go.Figure(
        go.Bar(
            x=[r["bucket"] for r in aging],
            y=[round((r["open_amount_cny"] or 0) / 1e4, 1) for r in aging],
            text=[f"{r['invoices']}张" for r in aging],
            textposition="outside",
            marker_color=["#f6c343", "#ff9f43", "#ff7a59", "#ff5c7a"][: len(aging)],
            hovertemplate="%{x}<br>%{y:,.1f} 万元<extra></extra>",
        )
    )
    return {
        "province": _figure(province_fig, barmode="stack", margin={"l": 64, "r": 12, "t": 30, "b": 28}),
        "trend": _figure(
            trend_fig,
            yaxis={"title": {"text": "万元"}, "gridcolor": "rgba(120,150,200,0.12)", "rangemode": "tozero"},
            yaxis2={
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "zeroline": False,
                "rangemode": "tozero",
                "title": {"text": "订单"},
            },
            xaxis={"tickformat": "%Y-%m", "gridcolor": "rgba(0,0,0,0)"},
            margin={"l": 56, "r": 48, "t": 30, "b": 32},
        ),
        "lifecycle": _figure(lifecycle_fig, margin={"l": 80, "r": 16, "t": 8, "b": 8}),
        "complaints": _figure(
            complaints_fig,
            barmode="overlay",
            xaxis={"tickformat": "%Y-%m", "gridcolor": "rgba(0,0,0,0)"},
            margin={"l": 40, "r": 12, "t": 30, "b": 32},
        ),
        "aging": _figure(
            aging_fig,
            yaxis={"title": {"text": "万元"}, "gridcolor": "rgba(120,150,200,0.12)"},
            margin={"l": 56, "r": 12, "t": 24, "b": 32},
        ),
    }


def current_data_as_of(conn: psycopg.Connection) -> datetime | None:
    """The "data as of" of the warehouse now, computed as the BI refresh does (the oldest last
    successful extract over every source); None before the first extract."""
    return data_as_of(conn, [s.name for s in load_sources()])


def write_dashboards(
    conn: psycopg.Connection,
    out_dir: Path | None = None,
    *,
    relations: Relations | None = None,
    as_of_time: datetime | None = None,
    max_customers: int = DEFAULT_MAX_CUSTOMERS,
) -> DashboardBuild:
    """Read the warehouse and write ``overview.html``, ``customer_360.html`` and ``index.html``.

    ``as_of_time``: the "data as of" time the pages show (the BI refresh passes the one it
    recorded); default computed the same way from the extracts. Files are written next to their
    final name and renamed, so a reader never opens half a page.
    """
    rel = relations or Relations()
    out = out_dir or default_output_dir()
    generated_at = datetime.now(UTC)
    as_of = as_of_time or current_data_as_of(conn)
    labels = load_labels()
    overview = overview_data(conn, rel)
    c360 = customer_360_data(conn, rel, max_customers)
    env = _env()
    plotly_js = get_plotlyjs()
    common = {
        "generated_at": generated_at,
        "data_as_of": as_of,
        "rules_as_of": overview["as_of_date"],
        "schema": rel.schema,
        "plotly_js": plotly_js,
    }
    system_labels = {s.name: s.label for s in load_sources()}
    rendered = {
        "overview": env.get_template("overview.html.j2").render(
            **common,
            d=overview,
            figures_json=script_json(overview_figures(overview)),
            system_labels=system_labels,
            labels=labels,
        ),
        "customer_360": env.get_template("customer_360.html.j2").render(
            **common,
            total_customers=c360["total_customers"],
            embedded=c360["embedded"],
            max_customers=max_customers,
            data_json=script_json(
                {
                    "customers": c360["customers"],
                    "labels": {name: m.columns for name, m in labels.items()},
                    "values": VALUE_LABELS,
                    "systems": system_labels,
                }
            ),
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    pages: dict[str, Path] = {}
    for name, html in rendered.items():
        pages[name] = _write(out / PAGES[name], html)
    pages["index"] = _write(
        out / "index.html",
        env.get_template("index.html.j2").render(
            **{**common, "plotly_js": ""}, embedded=c360["embedded"], total_customers=c360["total_customers"]
        ),
    )
    return DashboardBuild(out, pages, generated_at, as_of, c360["embedded"], c360["total_customers"])


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
