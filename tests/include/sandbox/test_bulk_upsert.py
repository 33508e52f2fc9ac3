"""POST /crm/v1/accounts/bulk-upsert: the push-back endpoint (own world, since it writes)."""

from __future__ import annotations

import httpx

from tests.include.conftest import World
from tests.include.sandbox.helpers import app_rows


def test_bulk_upsert_creates_updates_and_rejects(api: httpx.Client, world: World) -> None:
    existing = app_rows(world.data_dir, "crm_accounts")[0]
    response = api.post(
        "/crm/v1/accounts/bulk-upsert",
        headers={"X-Actor": "c360-sync"},
        json={
            "records": [
                {"id": existing["id"], "phone": "+8613912345678", "email": "new.mail@example.com"},
                {"id": None, "account_name": "杭州测试科技有限公司", "account_type": "company"},
                {"id": existing["id"], "phone": "+8613912345678"},
                {"id": existing["id"], "phone": "139-1234-5678"},
                {"id": existing["id"], "email": "not-an-email"},
                {"id": existing["id"], "shoe_size": 42},
                {"id": existing["id"], "updated_at": "2020-01-01T00:00:00Z"},
            ]
        },
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "updated",
        "created",
        "unchanged",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert "E.164" in results[3]["error"]
    assert "email" in results[4]["error"]
    assert "shoe_size" in results[5]["error"]
    assert results[0]["error"] is None

    updated = api.get(f"/crm/v1/accounts/{existing['id']}").json()
    assert updated["phone"] == "+8613912345678"
    assert updated["email"] == "new.mail@example.com"
    assert updated["updated_by"] == "c360-sync"
    assert updated["updated_at"] > existing["updated_at"]
    assert updated["account_name"] == existing["account_name"]

    created = api.get(f"/crm/v1/accounts/{results[1]['id']}").json()
    assert created["account_name"] == "杭州测试科技有限公司"
    assert created["updated_by"] == "c360-sync"
    # The write shows up in an incremental read from the old high-water mark.
    since = api.get("/crm/v1/accounts", params={"updated_since": updated["updated_at"]}).json()["data"]
    assert {existing["id"], results[1]["id"]} <= {r["id"] for r in since}


def test_default_actor_is_api(api: httpx.Client, world: World) -> None:
    existing = app_rows(world.data_dir, "crm_accounts")[5]
    body = {"records": [{"id": existing["id"], "email": "someone.else@example.cn"}]}
    assert api.post("/crm/v1/accounts/bulk-upsert", json=body).json()["results"][0]["status"] == "updated"
    assert api.get(f"/crm/v1/accounts/{existing['id']}").json()["updated_by"] == "api"
