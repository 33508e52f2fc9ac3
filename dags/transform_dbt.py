"""dbt: from raw landings to the customer 360 marts.

Runs whenever any source's raw Asset is updated, in one of two modes (``include/event_mode.py``):

- **Batch** (a scheduled or backfilled extract is among the triggering Asset events, or a manual
  run): the whole project. astronomer-cosmos renders it (from its manifest, so parsing is fast and
  needs no database) into a task per model with the model's tests right after it; a failing test
  stops everything downstream of that model.
- **Event** (every triggering extract was started by change messages): one ``dbt build`` of only
  the models between the changed sources and the marts the event-mode push flows read
  (``source:<changed>+`` intersected with ``+<mart>``, e.g. the call center's staging, identity
  resolution, the golden record and ``dim_customer`` / ``customer_crosswalk``), each model then
  its tests, in DAG order. One task instead of one per model: in event mode the scheduler's hops
  between tasks would cost more than the build. It leaves out the tests no landed data can fail:
  unit tests, and the data tests PostgreSQL enforces on the tables (NOT NULL, unique indexes, CHECK
  constraints; ``event_exclusions``), which a batch build runs.

Then data checks (row-count deltas, null rates, duplicate keys; ``monitoring.data_checks``) run
on the marts. When the marts are built, tested and checked, the DAG emits ``marts.dim_customer`` and
``marts.customer_crosswalk`` (with the mode and changed sources in the extra), which schedule the
pushes back to the source systems, and, in batch mode only, ``marts.customer_360`` and
``marts.customer_alerts`` (customers needing attention today) for BI refreshes and the alerting
work. ``max_active_runs=1``: a run never builds over another; events that arrive meanwhile are
merged into the next run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from c360_monitoring import alert_callbacks
from cosmos import DbtTaskGroup, ExecutionConfig, ProjectConfig, RenderConfig
from cosmos import settings as cosmos_settings
from cosmos.constants import InvocationMode, LoadMode, TestBehavior
from cosmos.operators.local import DbtBuildLocalOperator

from include.assets import CUSTOMER_360, CUSTOMER_ALERTS, CUSTOMER_CROSSWALK, DIM_CUSTOMER, raw_asset
from include.config import DBT_POOL, DBT_PROJECT_DIR
from include.dbt_profile import warehouse_profile
from include.registry import load_sources
from include.tags import OWNER, Layer

#: Rebuilt, checked and published in both modes: what the push flows are triggered by.
PUSH_MARTS = (DIM_CUSTOMER, CUSTOMER_CROSSWALK)
#: Published after batch builds only (an event-mode build does not rebuild them).
BATCH_ONLY_MARTS = (CUSTOMER_360, CUSTOMER_ALERTS)
#: XCom keys of choose_build's dbt selection and exclusions for the event-mode build.
EVENT_SELECT_KEY = "event_select"
EVENT_EXCLUDE_KEY = "event_exclude"
#: dbt's manifest, as `dbt parse` leaves it: the batch task group renders from it.
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"

_any_source_landed = None
for _source in load_sources():
    _asset = raw_asset(_source.name)
    _any_source_landed = _asset if _any_source_landed is None else (_any_source_landed | _asset)


@dag(
    dag_id="dbt_customer_360",
    description="dbt build: staging, identity resolution, golden records, customer marts",
    schedule=_any_source_landed,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.TRANSFORM.value],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=1), **alert_callbacks()},
)
def dbt_customer_360():
    profile = warehouse_profile()
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=MANIFEST,
        ),
        profile_config=profile,
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # one `dbt build` task per model: the model, then its tests, in one dbt invocation (half
            # the tasks and dbt start-ups of a run task plus a test task per model)
            test_behavior=TestBehavior.BUILD,
            # relationships tests need both models built: run them in their own task after both
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={"install_deps": False, "pool": DBT_POOL},
    )
    batch_roots = sorted(t.task_id for t in dbt.roots)

    @task.branch
    def choose_build(triggering_asset_events=None, ti=None) -> list[str]:
        """Batch: the whole project, a task per model. Event: one build of what the changed
        sources feed on the way to the event-mode push flows' marts (nothing when no flow reacts)."""
        import json

        from include.event_mode import (
            changed_sources,
            database_enforced_tests,
            event_exclusions,
            event_extras,
            event_selection,
        )
        from include.push.targets import load_targets

        sources = changed_sources(event_extras(triggering_asset_events))
        if sources is None:
            return batch_roots
        marts = [m.split(".", 1)[1] for m in load_targets().event_marts(sources)]
        select = event_selection(sources, marts)
        print(f"event mode: changed sources {sorted(sources)}; dbt build --select {' '.join(select)}")
        if not select:
            return []
        manifest = json.loads(MANIFEST.read_text())
        exclude = event_exclusions(manifest)
        print(
            f"event mode: leaving out unit tests and {len(database_enforced_tests(manifest))} data tests"
            f" the database enforces: --exclude {' '.join(exclude)}"
        )
        ti.xcom_push(key=EVENT_SELECT_KEY, value=" ".join(select))
        ti.xcom_push(key=EVENT_EXCLUDE_KEY, value=" ".join(exclude))
        return ["dbt_event_build"]

    event_build = DbtBuildLocalOperator(
        task_id="dbt_event_build",
        project_dir=DBT_PROJECT_DIR,
        profile_config=profile,
        invocation_mode=InvocationMode.DBT_RUNNER,
        install_deps=False,
        pool=DBT_POOL,
        select=f"{{{{ ti.xcom_pull(task_ids='choose_build', key='{EVENT_SELECT_KEY}') }}}}",
        # data tests whose every parent is rebuilt; the batch build runs the rest. Left out: unit
        # tests and the data tests the database enforces (include/event_mode.py, event_exclusions):
        # no landed data can fail them
        indirect_selection="cautious",
        exclude=f"{{{{ ti.xcom_pull(task_ids='choose_build', key='{EVENT_EXCLUDE_KEY}') }}}}",
        # where Cosmos keeps dbt's partial-parse state between runs: without one, an operator outside
        # a DbtTaskGroup parses the whole project on every run (about 25 s of the build here). The
        # batch task group's: same project and profile, and a batch build always comes first after
        # `make up` (the scheduled extracts), so the first event build finds it warm. With an empty
        # cache of its own, Cosmos would take dbt_project/target's, which the CLI's dbt parse leaves
        # under another profile: a full parse (65 s of the first event build after a restart).
        cache_dir=cosmos_settings.cache_dir / f"dbt_customer_360__{dbt.group_id}",
    )

    @task(outlets=list(PUSH_MARTS))
    def publish_marts(outlet_events=None, triggering_asset_events=None) -> dict:
        """Every model and test upstream passed: tell the push and BI DAGs the marts are fresh,
        with their row counts, the mode and the changed sources on the Asset events."""
        from include.event_mode import BATCH, EVENT, changed_sources, event_extras

        sources = changed_sources(event_extras(triggering_asset_events))
        mode = {"mode": BATCH} if sources is None else {"mode": EVENT, "sources": sorted(sources)}
        counts = _row_counts(PUSH_MARTS)
        for asset in PUSH_MARTS:
            outlet_events[asset].extra = {"rows": counts[asset.name], **mode}
        return {**counts, **mode}

    @task(outlets=list(BATCH_ONLY_MARTS))
    def publish_batch_marts(outlet_events=None, triggering_asset_events=None) -> dict:
        """The BI marts, after a batch build only: an event-mode build did not rebuild them."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.event_mode import changed_sources, event_extras

        if changed_sources(event_extras(triggering_asset_events)) is not None:
            raise AirflowSkipException("event-mode build: customer_360 and customer_alerts were not rebuilt")
        counts = _row_counts(BATCH_ONLY_MARTS)
        for asset in BATCH_ONLY_MARTS:
            outlet_events[asset].extra = {"rows": counts[asset.name]}
        return counts

    # after either build; skipped only when neither ran
    @task(trigger_rule="none_failed_min_one_success")
    def check_marts() -> dict:
        """Row-count deltas, null rates on key fields, duplicate keys (monitoring.yaml); a failed
        check stops the marts from being published, so nothing downstream reads them."""
        from include.config import WAREHOUSE_CONN_ID, connection_url
        from include.monitoring.data_checks import check_marts as run_checks

        return run_checks(connection_url(WAREHOUSE_CONN_ID))

    checked = check_marts()
    choose_build() >> [dbt, event_build]
    [dbt, event_build] >> checked
    checked >> [publish_marts(), publish_batch_marts()]


def _row_counts(assets) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    from include.config import WAREHOUSE_CONN_ID, connection_url

    with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
        return {
            asset.name: conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(*asset.name.split(".")))
            ).fetchone()[0]
            for asset in assets
        }


dbt_customer_360()
