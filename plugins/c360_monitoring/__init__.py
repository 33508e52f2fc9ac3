"""Customer 360 monitoring for Airflow: freshness sensors, alert callbacks, Deadline Alerts.

One import for any DAG (the generated push DAGs included)::

    from c360_monitoring import alert_callbacks, deadline_alert, freshness_gates

Airflow puts the plugins folder on ``sys.path`` and loads :class:`C360MonitoringPlugin`.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from c360_monitoring.callbacks import alert_callbacks, deadline_alert, on_task_failure, on_task_success
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


class C360MonitoringPlugin(AirflowPlugin):
    name = "c360_monitoring"
