"""Extract DAGs, one per source system, generated from ``include/registry/sources.yaml``.

Each DAG lands every entity of its source in ``raw_<source>.<entity>`` (append-only, deduplicated
on natural key + content hash, load metadata on every row) and then emits the ``raw_<source>``
Asset, which schedules the dbt transformation. Incremental entities read from the high-water mark
kept in ``ops.extract_state``; full entities re-read everything. Connections (API base URL and token,
source database) are resolved when the task runs, never when this file is parsed.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from include.assets import raw_asset
from include.config import WAREHOUSE_CONN_ID
from include.registry import Source, load_sources
from include.tags import Layer, source_tag


def _build(source: Source):
    entity_list = "\n".join(f"- `{e.name}` ({e.sync_mode}, key `{e.key}`)" for e in source.entities)

    @dag(
        dag_id=f"extract_{source.name}",
        description=f"{source.label}: land {source.description}",
        schedule=source.schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=f"# Extract {source.name} ({source.label})\n\n{source.description}\n\n"
        f"Lands into schema `{source.raw_schema}`:\n\n{entity_list}\n\n{__doc__}",
        tags=[Layer.EXTRACT.value, source_tag(source.name)],
        default_args={"owner": source.owner, "retries": 2, "retry_delay": timedelta(minutes=1)},
    )
    def extract_dag():
        extracted = []
        for entity in source.entities:

            @task(task_id=f"extract_{entity.name}", pool=source.pool or "default_pool")
            def extract(entity_name: str = entity.name) -> dict:
                from airflow.sdk import BaseHook

                from include.config import libpq_url
                from include.extract.runner import extract_entity

                warehouse = libpq_url(BaseHook.get_connection(WAREHOUSE_CONN_ID).get_uri())
                kwargs: dict = {}
                if source.kind == "http":
                    conn = BaseHook.get_connection(source.conn_id)
                    scheme = conn.schema or "http"
                    kwargs = {"base_url": f"{scheme}://{conn.host}:{conn.port}", "token": conn.password}
                elif source.kind == "database":
                    kwargs = {"source_db_url": libpq_url(BaseHook.get_connection(source.conn_id).get_uri())}
                result = extract_entity(source, source.entity(entity_name), warehouse, **kwargs)
                return result.as_dict()

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
