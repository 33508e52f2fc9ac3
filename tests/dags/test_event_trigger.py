"""Event-triggered extraction: the AssetWatcher's trigger really fires on a change message in Redis."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import redis

from include.registry import load_sources

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}: event-triggered extraction needs one (scheduled runs do not)")
    return client


def _watchers(condition) -> list:
    """Every AssetWatcher in a schedule's asset expression."""
    if hasattr(condition, "objects"):
        return [w for o in condition.objects for w in _watchers(o)]
    return list(getattr(condition, "watchers", []))


@pytest.mark.parametrize("source", [s for s in load_sources() if s.events], ids=lambda s: s.name)
def test_change_message_fires_the_watcher_within_seconds(source, dagbag, monkeypatch):
    publisher = _redis_or_skip()
    monkeypatch.setenv("AIRFLOW_CONN_C360_EVENTS", REDIS_URL)
    dag = dagbag.dags[f"extract_{source.name}"]
    (watcher,) = _watchers(dag.timetable.asset_condition)
    trigger = watcher.trigger.trigger  # MessageQueueTrigger resolves to the redis provider's trigger
    message = {"source": source.name, "entity": source.entities[0].name, "ids": ["X1"]}
    stop = threading.Event()

    def publish_until_heard() -> None:  # pub/sub keeps nothing: publish until the trigger listens
        while not stop.wait(0.2):
            publisher.publish(source.events.redis_channel, json.dumps(message))

    async def first_event():
        async for event in trigger.run():
            return event

    thread = threading.Thread(target=publish_until_heard, daemon=True)
    thread.start()
    try:
        event = asyncio.run(asyncio.wait_for(first_event(), timeout=10))
    finally:
        stop.set()
        thread.join()
    assert event.payload["channel"] == source.events.redis_channel
    assert json.loads(event.payload["data"]) == message
