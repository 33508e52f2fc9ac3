"""Change events for event-triggered extraction: what a CDC feed or webhook would tell us.

When records change in the CRM or the call center (bulk-upsert, or a tick's edits and new
records), the sandbox publishes to the source's Redis pub/sub channel from the registry
(``events.channel``, e.g. ``c360.source_changes.crm``, behind ``C360_EVENTS_CHANNEL_PREFIX`` if
set), where the extract DAG's AssetWatcher listens::

    {"source": "crm", "entity": "accounts", "ids": ["001...", ...], "changed_at": "2026-01-02T09:30:00+00:00"}

``ids`` holds at most ``MAX_IDS`` keys per message (larger changes are split). Publishing is on
only when ``C360_SANDBOX_REDIS_URL`` is set (e.g. ``redis://127.0.0.1:6379/0``), and it never
fails the change itself: a Redis that is down is logged and skipped, as a real system's outbox
would drop a notification rather than a write.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime

import redis

from include.registry import load_sources

REDIS_URL_ENV = "C360_SANDBOX_REDIS_URL"
EVENT_SOURCES = tuple(s.name for s in load_sources() if s.events)
#: Every source's channel, by name (the registry's ``events.channel`` behind
#: ``C360_EVENTS_CHANNEL_PREFIX``, if set).
CHANNELS = {s.name: s.events.redis_channel for s in load_sources() if s.events}
MAX_IDS = 1000

log = logging.getLogger(__name__)


class ChangePublisher:
    """Publishes change events to Redis; a no-op without a URL."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._client: redis.Redis | None = None

    @classmethod
    def from_env(cls) -> ChangePublisher:
        return cls(os.environ.get(REDIS_URL_ENV) or None)

    def _redis(self) -> redis.Redis:
        if self._client is None:
            # Short timeouts: a hung Redis must not hold up an API call for long.
            self._client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        return self._client

    def publish(self, source: str, entity: str, ids: Iterable[str], changed_at: datetime | str) -> int:
        """Publish the change; returns the number of messages sent (0 when off, empty or failed)."""
        ids = list(dict.fromkeys(str(i) for i in ids))  # unique, order kept
        if not self.url or not ids or source not in CHANNELS:
            return 0
        stamp = changed_at.isoformat() if isinstance(changed_at, datetime) else changed_at
        sent = 0
        try:
            client = self._redis()
            for start in range(0, len(ids), MAX_IDS):
                message = {
                    "source": source,
                    "entity": entity,
                    "ids": ids[start : start + MAX_IDS],
                    "changed_at": stamp,
                }
                client.publish(CHANNELS[source], json.dumps(message, ensure_ascii=False))
                sent += 1
        except Exception as exc:  # noqa: BLE001 - a notification must never fail the write it reports
            log.warning(
                "could not publish %s.%s change (%d ids) to %s: %s", source, entity, len(ids), self.url, exc
            )
        return sent

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
