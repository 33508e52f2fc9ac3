"""The DagBag, parsed once per session under a guard against parse-time database access."""

from __future__ import annotations

import pytest


class ParseTimeAccess(AssertionError):
    pass


@pytest.fixture(scope="session")
def dagbag():
    """Parse dags/ once, with every way of reaching a database or a Connection made to fail."""
    import psycopg
    import psycopg2
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    def refuse(*args, **kwargs):
        raise ParseTimeAccess(f"parse-time access: {args!r} {kwargs!r}")

    mp = pytest.MonkeyPatch()
    for target, name in [
        (psycopg, "connect"),
        (psycopg2, "connect"),
        (BaseHook, "get_connection"),
        (Variable, "get"),
    ]:
        mp.setattr(target, name, refuse)
    try:
        bag = DagBag(dag_folder="dags")
    finally:
        mp.undo()
    return bag
