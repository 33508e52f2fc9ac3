"""Freshness sensors: a consumer waits until its upstream source or mart is fresh in the warehouse.

One sensor per upstream, in ``reschedule`` mode (no worker slot held while waiting) with a
timeout, so a failed or late extract holds only the flows that read that source. In an event-mode
run (a change message started the pipeline: see ``include.event_mode``) a holding sensor pokes
again after ``sensor.event_poke_interval_s`` instead of ``poke_interval_s``. While it holds,
the sensor raises a ``stale:<upstream>`` alert (once per state change: see
``include.monitoring.alerts``); the first poke that finds the upstream fresh sends the recovery.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from include.config import WAREHOUSE_CONN_ID
from include.monitoring.settings import load_monitoring


class WarehouseFreshnessSensor(BaseSensorOperator):
    """Wait until ``source`` (a registry source) or ``mart`` (a relation with data checks) is fresh.

    - a source is fresh when every entity had a successful extract within the registry SLA;
    - a mart is fresh when a dbt build whose data checks all passed is younger than ``max_age``.
    """

    ui_color = "#e3f1e8"

    def __init__(
        self,
        *,
        source: str | None = None,
        mart: str | None = None,
        max_age: timedelta | None = None,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        if (source is None) == (mart is None):
            raise ValueError("WarehouseFreshnessSensor waits on exactly one of source= or mart=")
        settings = load_monitoring()
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", settings.sensor.poke_interval_s)
        kwargs.setdefault("timeout", timedelta(hours=settings.sensor.timeout_h))
        super().__init__(**kwargs)
        if source is not None:
            from include.registry import get_source

            get_source(source)  # an unknown source is a DAG import error, not a run-time surprise
        if mart is not None:
            # a mart without data checks has no recorded good build: the sensor would never pass
            settings.data_checks.model(mart)
        self.source = source
        self.mart = mart
        self.max_age = max_age or timedelta(hours=settings.mart_max_age_hours)
        self.warehouse_conn_id = warehouse_conn_id
        self.event_poke_interval = settings.sensor.event_poke_interval_s

    def execute(self, context: Any) -> Any:
        from include.event_mode import changed_sources, event_extras

        if changed_sources(event_extras(context.get("triggering_asset_events"))) is not None:
            # event mode: a change is on its way to the targets; re-check a stale upstream soon
            self.poke_interval = min(self.poke_interval, self.event_poke_interval)
        return super().execute(context)

    def poke(self, context: Any) -> bool:
        import psycopg

        from include.config import connection_url
        from include.monitoring.freshness import upstream_gate

        with psycopg.connect(connection_url(self.warehouse_conn_id)) as conn:
            verdict = upstream_gate(conn, source=self.source, mart=self.mart, max_age=self.max_age)
            self.log.info("%s: %s", "fresh" if verdict.fresh else "STALE, holding", verdict.detail)
            self._report(conn, context, verdict)
        return verdict.fresh

    def _report(self, conn: Any, context: Any, verdict: Any) -> None:
        from include.monitoring.alerts import gate_alert, report

        ti = context.get("ti")
        consumer = f"{self.dag_id}" + (f" ({ti.run_id})" if ti is not None else "")
        holding = f"Holding {consumer} until it is fresh (gives up after {self.timeout / 3600:g} h)."
        alert = gate_alert(verdict, consumer, holding, link=getattr(ti, "log_url", None))
        try:
            report(conn, load_monitoring(), alert, firing=not verdict.fresh)
        except Exception:  # alerting trouble must not change what the gate decides
            self.log.exception("could not record or send the freshness alert %s", alert.key)


def freshness_gates(
    consumer: str | None = None,
    *,
    sources: Iterable[str] = (),
    marts: Iterable[str] = (),
    **sensor_kwargs: Any,
) -> list[WarehouseFreshnessSensor]:
    """One sensor per upstream of ``consumer`` (its ``gates`` entry in monitoring.yaml), or of the
    ``sources`` / ``marts`` given. Call inside a DAG; put the result upstream of the work:

        freshness_gates("refresh_bi") >> refresh()
        freshness_gates(sources=flow.reads_sources, marts=flow.triggers) >> plan  # a push flow
    """
    sources, marts = list(sources), list(marts)
    if consumer is not None:
        gate = load_monitoring().gate(consumer)
        sources += [s for s in gate.sources if s not in sources]
        marts += [m for m in gate.marts if m not in marts]
    if not sources and not marts:
        raise ValueError("freshness_gates needs a consumer with a gate in monitoring.yaml, or sources/marts")
    sensors = [
        WarehouseFreshnessSensor(task_id=f"wait_for_source_{s}", source=s, **sensor_kwargs) for s in sources
    ]
    sensors += [
        WarehouseFreshnessSensor(task_id=f"wait_for_mart_{m.replace('.', '__')}", mart=m, **sensor_kwargs)
        for m in marts
    ]
    return sensors
