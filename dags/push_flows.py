"""Sync back out: push the golden records and insights into the operational systems.

One task group per flow of the target registry (``include/registry/targets.yaml``): CRM golden
contacts, ERP customer creation and OA contract-approval requests for new important customers,
call-center contact changes to every other system, marketing lead screening, erasure.

A batch run (after a batch dbt build, or started by hand) runs one task group per flow:
freshness sensors (reschedule mode) wait until the sources the flow reads (``reads_sources``) and
its marts are fresh, so a stale source holds only the flows that read it; ``plan`` queues in
``ops.sync_outbox`` only the records whose payload changed since the target last acknowledged it;
one ``send_<target>`` task per target (in the target's pool) sends them in batches with
idempotency keys, rate limits and retries; ``finish`` writes ``ops.sync_runs`` and fails when
rejects pile up.

An event-mode run (the marts were rebuilt after change messages: ``include/event_mode.py``) skips
the groups (``batch_mode``) and ``event_push`` does the same steps in one task for only the flows
whose ``event_sources`` changed: a change should reach the targets within a minute, and every
task costs a scheduler hop and a process start. A flow whose upstream is stale is skipped there
with its freshness alert; the next batch run's sensors and diff send it.

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
    def batch_mode(triggering_asset_events=None) -> bool:
        """Batch (or manual) run: every flow's task group. Event mode: none of them (event_push)."""
        from include.event_mode import changed_sources, event_extras

        return changed_sources(event_extras(triggering_asset_events)) is None

    @task
    def event_push(triggering_asset_events=None, params: dict | None = None, dag_run=None, ti=None) -> dict:
        """Event mode: the flows reacting to the changed sources, gates to finish, in this task."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.event_mode import changed_sources, event_extras
        from include.push.runner import event_push_task

        sources = changed_sources(event_extras(triggering_asset_events))
        if sources is None:
            raise AirflowSkipException("batch run: the flows' task groups push")
        print(f"event mode, changed sources {sorted(sources)}")
        params = params or {}
        return event_push_task(
            sources,
            bool(params.get("dry_run")),
            params.get("max_records"),
            consumer=f"push_flows ({dag_run.run_id})",
            link=getattr(ti, "log_url", None),
        )

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

    batch = batch_mode()
    event_push()
    for flow in REGISTRY.flows:
        with TaskGroup(group_id=flow.name, tooltip=flow.label):
            # wait until what the plan reads is fresh: a stale source holds only the flows reading it
            gates = freshness_gates(sources=flow.reads_sources, marts=flow.triggers)
            planned = plan.override(task_id="plan")(flow.name)
            batch >> gates
            gates >> planned
            sends = [
                send.override(task_id=f"send_{t}", pool=REGISTRY.target(t).pool)(flow.name, t, planned)
                for t in flow.targets
            ]
            sends >> finish.override(task_id="finish")(flow.name, planned)


push_flows()
