"""Extract DAGs, one per source system, generated from ``include/registry/sources.yaml``.

Each DAG lands every entity of its source in ``raw_<source>.<entity>`` (append-only, deduplicated
on natural key + content hash, load metadata on every row) and then emits the ``raw_<source>``
Asset, which schedules the dbt transformation.

- **Scheduled runs** cover a cron data interval. Incremental entities read from the high-water
  mark kept in ``ops.extract_state`` (so a late run or a gap loses nothing); full entities re-read
  everything and tombstone records the source no longer has.
- **Backfills** (``airflow backfill create --dag-id extract_<source> --from-date ... --to-date ...``)
  re-read exactly each past interval (plus a small overlap); landing dedupes what is already there.
- **Event runs**: sources with ``events`` in the registry also run within seconds of a change
  message on their Redis channel (an AssetWatcher on a ``redis+pubsub`` message queue, served by
  the triggerer). They read incrementally, like a scheduled run (the changed ids are among what
  changed since the high-water mark), and emit the raw Asset with ``mode: event`` in its extra, so
  the dbt DAG builds only what this source feeds (``include/event_mode.py``).

Every run of every entity is audited in ``ops.extract_runs``; bad rows go to ``ops.quarantine``.
Connections (API host and token, source database) are resolved when the task runs, never when
this file is parsed.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, CronDataIntervalTimetable, dag, task
from c360_monitoring import alert_callbacks

from include.assets import raw_asset
from include.registry import Source, load_sources
from include.tags import Layer, source_tag

#: Airflow connection of the Redis that carries source change events (see include/cli.py).
EVENTS_CONN_ID = "c360_events"


def _schedule(source: Source):
    interval = CronDataIntervalTimetable(source.schedule, timezone="UTC")
    if source.events is None:
        return interval
    changes = Asset(
        name=f"source_changes_{source.name}",
        uri=f"redis+pubsub://{source.events.redis_channel}",
        group="source_events",
        watchers=[
            AssetWatcher(
                name=f"{source.name}_changes_watcher",
                trigger=MessageQueueTrigger(
                    scheme="redis+pubsub",
                    channels=[source.events.redis_channel],
                    redis_conn_id=EVENTS_CONN_ID,
                    poll_interval=1,
                ),
            )
        ],
    )
    return AssetOrTimeSchedule(timetable=interval, assets=changes)


def _build(source: Source):
    entity_list = "\n".join(f"- `{e.name}` ({e.sync_mode}, key `{e.key}`)" for e in source.entities)

    @dag(
        dag_id=f"extract_{source.name}",
        description=f"{source.label}: land {source.description}",
        schedule=_schedule(source),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=f"# Extract {source.name} ({source.label})\n\n{source.description}\n\n"
        f"Lands into schema `{source.raw_schema}`:\n\n{entity_list}\n\n{__doc__}",
        tags=[Layer.EXTRACT.value, source_tag(source.name)],
        default_args={
            "owner": source.owner,
            "retries": 2,
            "retry_delay": timedelta(minutes=1),
            **alert_callbacks(),
        },
    )
    def extract_dag():
        extracted = []
        for entity in source.entities:

            @task(task_id=f"extract_{entity.name}", pool=source.pool or "default_pool")
            def extract(
                entity_name: str = entity.name, dag_run=None, data_interval_start=None, data_interval_end=None
            ):
                from include.extract.task import extract_task

                return extract_task(
                    source.name,
                    entity_name,
                    dag_run.run_id,
                    backfill=str(dag_run.run_type).lower().endswith("backfill"),
                    interval=(data_interval_start, data_interval_end),
                )

            extracted.append(extract())

        @task(outlets=[raw_asset(source.name)])
        def publish(results: list[dict], outlet_events=None, triggering_asset_events=None) -> dict:
            """Emit the raw Asset once every entity has landed. Its extra says whether change
            messages started this run (``mode: event``: the dbt DAG then builds only what this
            source feeds) and carries the batch figures. An event run that landed nothing new
            emits nothing: a change is announced per entity, so the messages of one change start
            two runs, and the second finds everything landed by the first."""
            from airflow.sdk.exceptions import AirflowSkipException

            from include.event_mode import EVENT, event_extras, run_mode

            figures = {
                r["entity"]: {k: r[k] for k in ("received", "inserted", "duplicates", "quarantined")}
                for r in results
            }
            extra = {
                "mode": run_mode(event_extras(triggering_asset_events)),
                "source": source.name,
                "entities": figures,
            }
            if extra["mode"] == EVENT and not any(f["inserted"] for f in figures.values()):
                raise AirflowSkipException(f"event run: nothing new landed in {source.raw_schema}")
            outlet_events[raw_asset(source.name)].extra = extra
            return extra

        publish(extracted)

    return extract_dag()


for _source in load_sources():
    globals()[f"extract_{_source.name}"] = _build(_source)
