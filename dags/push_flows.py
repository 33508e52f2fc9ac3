"""Sync back out: push the golden records and insights into the operational systems.

One task group per flow of the target registry (``include/registry/targets.yaml``): CRM golden
contacts, ERP customer creation and OA contract-approval requests for new important customers,
call-center contact changes to every other system, marketing lead screening, erasure.

Per flow: ``selected`` decides whether the flow runs in this run: always in batch mode; in event
mode (the marts were rebuilt after change messages: ``include/event_mode.py``) only when the
changed sources are among the flow's ``event_sources``, else the whole group is skipped. ``plan``
queues in ``ops.sync_outbox`` only the records whose payload changed since the target last
acknowledged it; one ``send_<target>`` task per target (in the target's pool) sends them
in batches with idempotency keys, rate limits and retries; ``finish`` writes ``ops.sync_runs`` and
fails when rejects pile up. Runs when the dbt DAG has rebuilt the customer marts; each flow first
waits (freshness sensors, reschedule mode) until the sources it reads (``reads_sources``) and its
marts are fresh, so a stale source holds only the flows that read it (re-checked every
``sensor.event_poke_interval_s`` in event mode, ``poke_interval_s`` otherwise).

Params: ``dry_run`` (report what would be sent, send nothing) and ``max_records`` (send at most
this many per target: test a small batch first).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TaskGroup, dag, task
from c360_monitoring import alert_callbacks, freshness_gates

from include.assets import MART_ASSETS
from include.push.targets import load_targets
from include.tags import OWNER, Layer, target_tag

REGISTRY = load_targets()
TRIGGERS = sorted({t for f in REGISTRY.flows for t in f.triggers})


@dag(
    dag_id="push_flows",
    description="Push golden records back to CRM, ERP, OA, call center and marketing (target registry)",
    schedule=[MART_ASSETS[name] for name in TRIGGERS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.PUSH.value, *sorted({target_tag(t.system) for t in REGISTRY.targets})],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=1), **alert_callbacks()},
    params={
        "dry_run": Param(False, type="boolean", description="report what would be sent; send nothing"),
        "max_records": Param(None, type=["null", "integer"], minimum=1, description="cap per target"),
    },
)
def push_flows():
    @task.short_circuit
    def selected(flow_name: str, triggering_asset_events=None) -> bool:
        """Batch: every flow. Event mode: only the flows reacting to the changed sources."""
        from include.event_mode import changed_sources, event_extras

        sources = changed_sources(event_extras(triggering_asset_events))
        if sources is None:
            return True
        runs = flow_name in {f.name for f in REGISTRY.event_flows(sources)}
        print(
            f"event mode, changed sources {sorted(sources)}: flow {flow_name} {'runs' if runs else 'skipped'}"
        )
        return runs

    @task
    def plan(flow_name: str, params: dict | None = None) -> dict:
        from include.push.runner import plan_task

        return plan_task(flow_name, bool((params or {}).get("dry_run")))

    @task
    def send(flow_name: str, target_name: str, planned: dict, params: dict | None = None) -> dict:
        from include.push.runner import send_task

        return send_task(flow_name, target_name, planned, (params or {}).get("max_records"))

    @task(trigger_rule="all_done")
    def finish(flow_name: str, planned: dict) -> dict:
        from include.push.runner import finish_task

        return finish_task(flow_name, planned)

    for flow in REGISTRY.flows:
        with TaskGroup(group_id=flow.name, tooltip=flow.label):
            # wait until what the plan reads is fresh: a stale source holds only the flows reading it
            gates = freshness_gates(sources=flow.reads_sources, marts=flow.triggers)
            planned = plan.override(task_id="plan")(flow.name)
            selected.override(task_id="selected")(flow.name) >> gates
            gates >> planned
            sends = [
                send.override(task_id=f"send_{t}", pool=REGISTRY.target(t).pool)(flow.name, t, planned)
                for t in flow.targets
            ]
            sends >> finish.override(task_id="finish")(flow.name, planned)


push_flows()
