"""The HTTP systems over real HTTP: pagination contracts, filters, auth, rate limits, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from include.sandbox.stores import app_tables
from tests.include.conftest import TOKEN, World, serve
from tests.include.sandbox.helpers import app_rows


def crm_all(api: httpx.Client, path: str, **params) -> list[dict]:
    rows, cursor = [], None
    while True:
        body = api.get(
            path, params={**params, "page_size": 97} | ({"cursor": cursor} if cursor else {})
        ).json()
        rows += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


def oa_all(api: httpx.Client, path: str, **params) -> list[dict]:
    rows, page = [], 1
    while True:
        body = api.get(path, params={**params, "page": page, "per_page": 53}).json()
        rows += body["items"]
        if page * body["per_page"] >= body["total"]:
            assert len(rows) == body["total"]
            return rows
        page += 1


def cc_all(api: httpx.Client, path: str, **params) -> list[dict]:
    rows, url = [], f"{path}?limit=71"
    if params:
        url += "&" + str(httpx.QueryParams(params))
    while url:
        body = api.get(url).json()
        rows += body["results"]
        url = body["next"]
    return rows


FETCH = {"crm": crm_all, "oa": oa_all, "callcenter": cc_all}


@pytest.mark.parametrize("table", sorted(app_tables()))
def test_pagination_returns_every_row_exactly_once(api: httpx.Client, world: World, table: str) -> None:
    spec = app_tables()[table]
    served = FETCH[spec.system](api, spec.path)
    stored = app_rows(world.data_dir, table)
    assert len(served) == len(stored) > 0
    assert sorted(served, key=lambda r: r[spec.key]) == stored  # the stored rows, field for field
    order = [(r[spec.updated_at], r[spec.key]) for r in served]
    assert order == sorted(order)


@pytest.mark.parametrize(
    ("table", "param", "inclusive"),
    [
        ("crm_accounts", "updated_since", True),
        ("oa_customer_archive", "modified_after", False),
        ("callcenter_tickets", "since", True),
    ],
)
def test_updated_since_filters(
    api: httpx.Client, world: World, table: str, param: str, inclusive: bool
) -> None:
    spec = app_tables()[table]
    stored = sorted(app_rows(world.data_dir, table), key=lambda r: r[spec.updated_at])
    pivot = stored[len(stored) // 2][spec.updated_at]
    served = FETCH[spec.system](api, spec.path, **{param: pivot})
    expected = [
        r for r in stored if (r[spec.updated_at] >= pivot if inclusive else r[spec.updated_at] > pivot)
    ]
    assert 0 < len(served) < len(stored)
    assert {r[spec.key] for r in served} == {r[spec.key] for r in expected}


def test_crm_filter_accepts_other_timezones(api: httpx.Client, world: World) -> None:
    # 2025-06-01T08:00:00+08:00 is midnight UTC; the CRM stores UTC.
    served = crm_all(api, "/crm/v1/accounts", updated_since="2025-06-01T08:00:00+08:00")
    stored = [
        r for r in app_rows(world.data_dir, "crm_accounts") if r["updated_at"] >= "2025-06-01T00:00:00Z"
    ]
    assert {r["id"] for r in served} == {r["id"] for r in stored}


def test_bad_cursor_and_bad_timestamp_are_clear_errors(api: httpx.Client) -> None:
    bad_cursor = api.get("/crm/v1/accounts", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]
    bad_time = api.get("/cc/api/v2/callers", params={"since": "yesterday"})
    assert bad_time.status_code == 422 and "ISO-8601" in bad_time.json()["detail"]


def test_single_account_lookup(api: httpx.Client, world: World) -> None:
    account = app_rows(world.data_dir, "crm_accounts")[3]
    assert api.get(f"/crm/v1/accounts/{account['id']}").json() == account
    assert api.get("/crm/v1/accounts/0010000nothere").status_code == 404


def test_requests_without_the_token_get_401(api: httpx.Client) -> None:
    base = str(api.base_url)
    missing = httpx.get(f"{base}/oa/api/customer-archive")
    wrong = httpx.get(f"{base}/cc/api/v2/tickets", headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert "Bearer" in response.json()["detail"]
    health = httpx.get(f"{base}/health")
    assert health.status_code == 200 and health.json()["tables"]["crm_accounts"] > 0


def test_server_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from include.sandbox.server import create_app

    monkeypatch.delenv("C360_SANDBOX_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="C360_SANDBOX_TOKEN"):
        create_app()


def test_rate_limit_returns_429_with_retry_after(world: World) -> None:
    with serve(world.data_dir / "sandbox" / "apps.sqlite", rate_limit=2) as base_url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        crm = [httpx.get(f"{base_url}/crm/v1/contacts", headers=headers) for _ in range(5)]
        oa = httpx.get(f"{base_url}/oa/api/contract-approvals", headers=headers)  # its own bucket
    statuses = [r.status_code for r in crm]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses
    limited = crm[statuses.index(429)]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"] == "rate_limited"
    assert oa.status_code == 200


def test_openapi_documents_every_registry_path(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    expected = {t.path for t in app_tables().values()} | {
        "/crm/v1/accounts/bulk-upsert",
        "/crm/v1/accounts/{account_id}",
        "/health",
    }
    assert expected <= set(spec["paths"])
    assert spec["paths"]["/crm/v1/accounts"]["get"]["tags"] == ["crm"]
    assert spec["paths"]["/crm/v1/accounts"]["get"]["summary"]
    schemas = spec["components"]["schemas"]
    assert "next_cursor" in schemas["CrmPage_CrmAccountsRecord_"]["properties"]
    for table in app_tables().values():
        record = "".join(part.title() for part in table.table.split("_")) + "Record"
        assert list(schemas[record]["properties"]) == list(table.fields)
