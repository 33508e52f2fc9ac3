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
  the triggerer).

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
        uri=f"redis+pubsub://{source.events.channel}",
        group="source_events",
        watchers=[
            AssetWatcher(
                name=f"{source.name}_changes_watcher",
                trigger=MessageQueueTrigger(
                    scheme="redis+pubsub",
                    channels=[source.events.channel],
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
                from include.config import component_conn_id, connection_url

                entity = source.entity(entity_name)
                warehouse = connection_url(component_conn_id("loader"))
                if source.kind == "files":
                    from include.extract.file_drops import extract_files

                    return extract_files(source, entity, warehouse, run_id=dag_run.run_id).as_dict()

                from include.extract.runner import extract_entity

                backfill = str(dag_run.run_type).lower().endswith("backfill")
                kwargs = {
                    "run_id": dag_run.run_id,
                    "interval": (data_interval_start, data_interval_end) if backfill else None,
                }
                if source.kind == "database":
                    db = connection_url(source.conn_id)
                    return extract_entity(source, entity, warehouse, source_db_url=db, **kwargs).as_dict()
                from include.extract.http_api import source_session

                with source_session(source.conn_id) as client:
                    return extract_entity(source, entity, warehouse, client=client, **kwargs).as_dict()

            extracted.append(extract())

        @task(outlets=[raw_asset(source.name)])
        def publish(results: list[dict], outlet_events=None) -> dict:
            """Emit the raw Asset once every entity has landed, with the batch figures as its extra."""
            figures = {
                r["entity"]: {k: r[k] for k in ("received", "inserted", "duplicates", "quarantined")}
                for r in results
            }
            outlet_events[raw_asset(source.name)].extra = figures
            return figures

        publish(extracted)

    return extract_dag()


for _source in load_sources():
    globals()[f"extract_{_source.name}"] = _build(_source)
