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
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt

from include.registry import Pagination

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class RetryableHTTPError(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.request.method} {response.request.url} -> {response.status_code}")
        self.response = response


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, (RetryableHTTPError, httpx.TransportError))


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
    if response.status_code == 401:
        raise PermissionError(
            f"{response.request.url} refused the token (401); check the Airflow connection's password"
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


def fetch_pages(
    client: httpx.Client, path: str, pagination: Pagination, since: datetime | None
) -> Iterator[list[dict[str, Any]]]:
    """Yield one list of records per page, oldest changes first."""
    since_iso = since.isoformat() if since else None
    size = pagination.page_size
    if pagination.style == "cursor":
        cursor = None
        while True:
            body = _get(client, path, {"updated_since": since_iso, "page_size": size, "cursor": cursor})
            yield body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return
    elif pagination.style == "page":
        page = 1
        while True:
            body = _get(client, path, {"modified_after": since_iso, "page": page, "per_page": size})
            items = body["items"]
            yield items
            if not items or page * body["per_page"] >= body["total"]:
                return
            page += 1
    elif pagination.style == "offset":
        params: dict[str, Any] = {"since": since_iso, "offset": 0, "limit": size}
        next_path: str | None = path
        while next_path:
            body = _get(client, next_path, params)
            yield body["results"]
            next_path = body.get("next")
            if next_path:
                # The link carries the query; pass it as params (httpx drops a URL's own query
                # when params are given as well).
                link = httpx.URL(next_path)
                next_path, params = link.path, dict(link.params)
    else:  # pragma: no cover - the registry's schema allows only the styles above
        raise ValueError(f"unknown pagination style {pagination.style!r}")
