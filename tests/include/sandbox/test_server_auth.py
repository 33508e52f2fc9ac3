"""Every sandbox route but liveness and the API docs needs the bearer token: without it, or with a
wrong one, the answer is 401 with no data, and a write changes nothing."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.include.conftest import TOKEN, World, sandbox_app, serve_app
from tests.include.sandbox.helpers import app_rows

#: Routes anyone may call: liveness (row counts only) and the API's own documentation.
PUBLIC = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

BAD_AUTH = {
    "no header": {},
    "wrong token": {"Authorization": "Bearer wrong-" + TOKEN},
    "token with a suffix": {"Authorization": f"Bearer {TOKEN}x"},
    "token prefix only": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "no Bearer scheme": {"Authorization": TOKEN},
    "basic scheme": {"Authorization": "Basic dGVzdDp0ZXN0LXRva2Vu"},
    "empty bearer": {"Authorization": "Bearer"},
    "token as a query parameter": {},  # sent as ?token= below: never accepted there
}


def _snapshot(world: World) -> dict[str, list[tuple]]:
    """Every table of the sandbox's apps database, in full."""
    with sqlite3.connect(world.data_dir / "sandbox" / "apps.sqlite") as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        return {t: conn.execute(f'select * from "{t}" order by 1').fetchall() for t in tables}


@pytest.fixture(scope="module")
def served(world: World):
    app = sandbox_app(world.data_dir / "sandbox" / "apps.sqlite")
    with serve_app(app) as base_url:
        yield app, base_url


def _calls(app, world: World) -> list[tuple[str, str, dict]]:
    """(method, path, request kwargs) for every route of the app, with a well-formed request."""
    account = app_rows(world.data_dir, "crm_accounts")[0]
    calls = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC:
            continue
        path = route.path.replace("{account_id}", account["id"])
        for method in route.methods:
            kwargs: dict = {}
            if path.endswith("/bulk-write"):
                kwargs["json"] = {
                    "mode": "upsert",
                    "records": [{"key": account["id"], "idempotency_key": "auth-probe", "fields": {}}],
                }
            elif path.endswith("/bulk-upsert"):
                kwargs["json"] = {"records": [{"id": account["id"], "email": "attacker@example.com"}]}
            elif path == "/_admin/faults" and method == "PUT":
                kwargs["json"] = {"p500": 1.0}
            calls.append((method, path, kwargs))
    return calls


def test_every_route_but_health_and_docs_needs_the_token(served, world: World) -> None:
    app, base_url = served
    calls = _calls(app, world)
    # the routes the sandbox serves: three systems' lists, one account, writes and the admin switches
    assert len(calls) >= 15
    assert any(m == "POST" for m, _, _ in calls) and any(p.startswith("/_admin") for _, p, _ in calls)
    before = _snapshot(world)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for method, path, kwargs in calls:
            for label, headers in BAD_AUTH.items():
                params = {"token": TOKEN, "access_token": TOKEN} if "query" in label else {}
                response = client.request(method, path, headers=headers, params=params, **kwargs)
                assert response.status_code == 401, (method, path, label, response.status_code)
                assert response.json() == {"error": "unauthorized", "detail": response.json()["detail"]}
                assert "Bearer" in response.headers["WWW-Authenticate"]
                assert TOKEN not in response.text
        # the right token gets through (the probe above used valid requests)
        ok = client.get(calls[0][1], headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, ok.text
        faults = client.get("/_admin/faults", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert _snapshot(world) == before, "a refused request changed the sandbox's data"
    assert faults["config"]["p500"] == 0, "a refused request changed the fault switch"


def test_public_routes_carry_no_records(served, world: World) -> None:
    _, base_url = served
    account = app_rows(world.data_dir, "crm_accounts")[0]
    health = httpx.get(f"{base_url}/health", timeout=10)
    assert health.status_code == 200
    assert set(health.json()) == {"status", "tables"}
    assert all(isinstance(n, int) for n in health.json()["tables"].values())
    docs = httpx.get(f"{base_url}/openapi.json", timeout=10).text
    assert account["id"] not in docs and str(account["phone"]) not in docs
