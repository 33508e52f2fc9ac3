"""The body of an extract task: one entity of one source, with connections from Airflow.

Call it in a task only: it reads Airflow connections (the warehouse, the source's API or
database). Everything it calls is plain and tested without Airflow (:mod:`include.extract.runner`,
:mod:`include.extract.file_drops`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def extract_task(
    source_name: str,
    entity_name: str,
    run_id: str,
    *,
    backfill: bool = False,
    interval: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    """Extract ``source_name.entity_name`` into the warehouse; a backfill reads exactly ``interval``."""

    from include.config import component_conn_id, connection_url
    from include.registry import get_source

    source = get_source(source_name)
    entity = source.entity(entity_name)
    warehouse = connection_url(component_conn_id("loader"))
    if source.kind == "files":
        from include.extract.file_drops import extract_files

        return extract_files(source, entity, warehouse, run_id=run_id).as_dict()

    from include.extract.runner import extract_entity

    kwargs = {"run_id": run_id, "interval": interval if backfill else None}
    if source.kind == "database":
        db = connection_url(source.conn_id)
        return extract_entity(source, entity, warehouse, source_db_url=db, **kwargs).as_dict()
    from include.extract.http_api import source_session

    with source_session(source.conn_id) as client:
        return extract_entity(source, entity, warehouse, client=client, **kwargs).as_dict()
