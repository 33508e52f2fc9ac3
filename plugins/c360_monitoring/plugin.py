"""The Airflow plugin: ``monitoring.pipeline_health`` on the API server and in the UI's navigation.

Airflow imports every module of the plugins folder and registers this class. It lives apart from
the package's ``__init__`` so that DAG files, which import the sensors and callbacks, do not pay
for importing FastAPI.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from c360_monitoring.health_page import create_app

HEALTH_PREFIX = "/c360-health"


class C360MonitoringPlugin(AirflowPlugin):
    name = "c360_monitoring"
    fastapi_apps = [{"app": create_app(), "url_prefix": HEALTH_PREFIX, "name": "C360 pipeline health"}]
    external_views = [
        {
            "name": "Pipeline health",
            "href": f"{HEALTH_PREFIX}/",
            "destination": "nav",
            "url_route": "pipeline-health",
        }
    ]
