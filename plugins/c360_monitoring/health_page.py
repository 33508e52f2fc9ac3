"""``monitoring.pipeline_health`` inside the Airflow UI: a page and a JSON endpoint.

Served by the Airflow API server under ``/c360-health`` (the plugin's ``fastapi_apps``) and linked
from the UI's navigation (``external_views``). It reads the warehouse named by
``C360_WAREHOUSE_URL`` when a request comes in, never at import. It shows operational figures
only (statuses, counts, ages), no customer data.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

COLOURS = {"green": "#1e8e3e", "amber": "#f29900", "red": "#d93025"}


def _read(warehouse_url: str | None) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    import psycopg

    from include.config import warehouse_url as configured_url
    from include.monitoring.health import health_checks, pipeline_health

    with psycopg.connect(warehouse_url or configured_url(), connect_timeout=5) as conn:
        return pipeline_health(conn), health_checks(conn)


def _badge(status: str) -> str:
    return f'<b style="color:{COLOURS.get(status, "#555")}">{escape(status.upper())}</b>'


def render(systems: dict[str, dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_badge(s['status'])}</td><td>{s['red_checks']}</td>"
        f"<td>{s['amber_checks']}</td><td>{escape(s['summary'])}</td></tr>"
        for name, s in systems.items()
    )
    detail = "".join(
        f"<tr><td>{escape(c['system'])}</td><td>{escape(c['subject'])}</td><td>{escape(c['check_name'])}</td>"
        f"<td>{'' if c['value'] is None else c['value']}</td><td>{_badge(c['status'])}</td>"
        f"<td>{escape(c['detail'] or '')}</td></tr>"
        for c in checks
        if c["status"] != "green"
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>Pipeline health</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:.3em .8em;text-align:left;"
        "border-bottom:1px solid #ddd}</style>"
        "<h2>Customer 360 pipeline health</h2>"
        "<table><tr><th>system</th><th>status</th><th>red</th><th>amber</th><th>summary</th></tr>"
        f"{rows}</table><h3>Checks that are not green</h3>"
        "<table><tr><th>system</th><th>subject</th><th>check</th><th>value</th><th>status</th><th>detail</th></tr>"
        f"{detail or '<tr><td colspan=6>none</td></tr>'}</table>"
        "<p>Source: <code>monitoring.pipeline_health</code> and "
        "<code>monitoring.pipeline_health_checks</code> in the warehouse; "
        "thresholds in <code>include/registry/monitoring.yaml</code>.</p>"
    )


def create_app(warehouse_url: str | None = None) -> FastAPI:
    app = FastAPI(title="Customer 360 pipeline health")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render(*_read(warehouse_url))

    @app.get("/api")
    def api() -> dict[str, Any]:
        systems, checks = _read(warehouse_url)
        return {"systems": systems, "checks": checks}

    return app
