"""Read a paginated REST API, page by page, with retries that respect the server.

Three pagination styles cover the sandbox systems (and most real ones); the style and
page size come from the source registry.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import requests
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt

from include.registry import Pagination

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class RetryableHTTPError(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.request.method} {response.request.url} -> {response.status_code}")
        self.response = response


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(
        exc, (RetryableHTTPError, httpx.TransportError, requests.ConnectionError, requests.Timeout)
    )


def _wait(state: RetryCallState) -> float:
    """Honour Retry-After on 429/503; otherwise exponential backoff with full jitter."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryableHTTPError):
        retry_after = exc.response.headers.get("Retry-After")
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            return min(float(retry_after), 60.0)
    return random.uniform(0, min(30.0, 0.5 * 2 ** (state.attempt_number - 1)))


@retry(retry=retry_if_exception(_is_retryable), wait=_wait, stop=stop_after_attempt(6), reraise=True)
def request_json(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One API call with retries on 429/5xx and transport errors; 4xx other than 429 fail at once."""
    params = {k: v for k, v in (params or {}).items() if v is not None}
    response = client.request(method, path, params=params, json=json, headers=headers)
    if response.status_code in RETRYABLE_STATUS:
        raise RetryableHTTPError(response)
    if response.status_code == 400:
        raise ValueError(f"{response.request.url} rejected the request: {response.text[:500]}")
    if response.status_code in (401, 403):
        conn_id = getattr(client, "conn_id", None)
        where = f"Airflow connection {conn_id}" if conn_id else "the API connection"
        raise PermissionError(
            f"{response.request.url} refused our token ({response.status_code}): the password of {where} "
            "is not the API's bearer token; nothing was read"
        )
    response.raise_for_status()
    return response.json()


def _get(client: httpx.Client, path: str, params: dict[str, Any]) -> dict[str, Any]:
    return request_json(client, "GET", path, params=params)


def make_client(base_url: str, token: str | None, timeout: float = 30.0) -> httpx.Client:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout)


class HookSession:
    """The HTTP provider's ``HttpHook`` session, shaped like an ``httpx.Client`` for :func:`request_json`.

    The hook brings the connection (host, port, scheme, extra headers); the bearer token is the
    connection's password.
    """

    def __init__(self, hook: Any, token: str | None, timeout: float = 30.0):
        self.conn_id = getattr(hook, "http_conn_id", None)
        if not token:
            raise PermissionError(
                f"Airflow connection {self.conn_id} has no password: it must hold the API's bearer token; "
                "nothing was read"
            )
        self._session = hook.get_conn()
        self._base = hook.base_url.rstrip("/")
        self._timeout = timeout
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.headers["Accept"] = "application/json"

    def request(self, method: str, path: str, *, params=None, json=None, headers=None):
        return self._session.request(
            method, self._base + path, params=params, json=json, headers=headers, timeout=self._timeout
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HookSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def source_session(conn_id: str, timeout: float = 30.0) -> HookSession:
    """The HTTP session of a source's Airflow connection (task time only: it reads the connection).

    The connection's password is the API's bearer token; a connection without one fails here,
    before any request, naming the connection.
    """
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk import BaseHook

    token = BaseHook.get_connection(conn_id).password
    return HookSession(HttpHook(method="GET", http_conn_id=conn_id), token, timeout=timeout)


def _first_updated(records: list[dict[str, Any]], updated_at: str | None) -> datetime | None:
    if not records or not updated_at or not records[0].get(updated_at):
        return None
    return datetime.fromisoformat(str(records[0][updated_at]).replace("Z", "+00:00"))


def fetch_pages(
    client: Any,
    path: str,
    pagination: Pagination,
    since: datetime | None,
    *,
    resume: dict[str, Any] | None = None,
    until: datetime | None = None,
    updated_at: str | None = None,
) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """Yield ``(records, resume_token)`` per page, oldest changes first.

    ``resume_token`` is what :func:`fetch_pages` takes as ``resume`` to carry on after that page
    (``None`` after the last page). With ``until``, records changed at or after it are dropped
    and paging stops once a page starts past it (the APIs order by their updated-at field).
    """
    since_iso = since.isoformat() if since else None
    size = pagination.page_size
    resume = resume or {}

    def bounded(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        if until is None or not updated_at:
            return records, False
        kept = [
            r
            for r in records
            if r.get(updated_at) is None
            or datetime.fromisoformat(str(r[updated_at]).replace("Z", "+00:00")) < until
        ]
        first = _first_updated(records, updated_at)
        return kept, len(kept) < len(records) or (first is not None and first >= until)

    if pagination.style == "cursor":
        cursor = resume.get("cursor")
        while True:
            body = _get(client, path, {"updated_since": since_iso, "page_size": size, "cursor": cursor})
            cursor = body.get("next_cursor")
            records, past_until = bounded(body["data"])
            done = not cursor or past_until
            yield records, None if done else {"cursor": cursor}
            if done:
                return
    elif pagination.style == "page":
        page = resume.get("page", 1)
        while True:
            body = _get(client, path, {"modified_after": since_iso, "page": page, "per_page": size})
            records, past_until = bounded(body["items"])
            done = not body["items"] or page * body["per_page"] >= body["total"] or past_until
            yield records, None if done else {"page": page + 1}
            if done:
                return
            page += 1
    elif pagination.style == "offset":
        if resume.get("next"):
            link = httpx.URL(resume["next"])
            next_path, params = link.path, dict(link.params)
        else:
            next_path, params = path, {"since": since_iso, "offset": 0, "limit": size}
        while next_path:
            body = _get(client, next_path, params)
            records, past_until = bounded(body["results"])
            link_text = None if past_until else body.get("next")
            yield records, {"next": link_text} if link_text else None
            if not link_text:
                return
            # The link carries the query; pass it as params (httpx drops a URL's own query
            # when params are given as well).
            link = httpx.URL(link_text)
            next_path, params = link.path, dict(link.params)
    else:  # pragma: no cover - the registry's schema allows only the styles above
        raise ValueError(f"unknown pagination style {pagination.style!r}")
