"""Customer 360 monitoring for Airflow: freshness sensors, alert callbacks, Deadline Alerts, a health page.

One import for any DAG (the generated push DAGs included)::

    from c360_monitoring import alert_callbacks, deadline_alert, freshness_gates

Airflow puts the plugins folder on ``sys.path`` and loads :class:`C360MonitoringPlugin`, which
serves ``monitoring.pipeline_health`` at ``/c360-health`` on the API server and links it from the
UI's navigation.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from c360_monitoring.callbacks import alert_callbacks, deadline_alert, on_task_failure, on_task_success
from c360_monitoring.health_page import create_app
from c360_monitoring.sensors import WarehouseFreshnessSensor, freshness_gates

__all__ = [
    "C360MonitoringPlugin",
    "WarehouseFreshnessSensor",
    "alert_callbacks",
    "deadline_alert",
    "freshness_gates",
    "on_task_failure",
    "on_task_success",
]

HEALTH_PREFIX = "/c360-health"


class C360MonitoringPlugin(AirflowPlugin):
    name = "c360_monitoring"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": HEALTH_PREFIX, "name": "Customer 360 pipeline health"}
    ]
    external_views = [
        {
            "name": "Pipeline health",
            "href": f"{HEALTH_PREFIX}/",
            "destination": "nav",
            "url_route": "pipeline-health",
        }
    ]
