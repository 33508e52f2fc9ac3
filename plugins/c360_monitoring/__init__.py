"""Customer 360 monitoring for Airflow: freshness sensors, alert callbacks, Deadline Alerts.

One import for any DAG (the generated push DAGs included)::

    from c360_monitoring import alert_callbacks, deadline_alert, freshness_gates

Airflow puts the plugins folder on ``sys.path``; :mod:`c360_monitoring.plugin` holds the plugin
class that serves ``monitoring.pipeline_health`` in the Airflow UI.
"""

from __future__ import annotations

from c360_monitoring.callbacks import alert_callbacks, deadline_alert, on_task_failure, on_task_success
from c360_monitoring.sensors import WarehouseFreshnessSensor, freshness_gates

__all__ = [
    "WarehouseFreshnessSensor",
    "alert_callbacks",
    "deadline_alert",
    "freshness_gates",
    "on_task_failure",
    "on_task_success",
]
