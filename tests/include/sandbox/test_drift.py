"""Schema drift: the API starts serving an added field and stops serving a dropped one, live."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from include.config import PROJECT_ROOT
from include.sandbox import drift
from include.sandbox.stores import app_tables
from tests.include.conftest import TOKEN, World, sandbox_app, serve_app
from tests.include.sandbox.helpers import app_rows

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def cli(world: World, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"C360_DATA_DIR": str(world.data_dir), "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "include.sandbox", "drift", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def oa_archive(client: httpx.Client) -> list[dict]:
    rows, page = [], 1
    while True:
        body = client.get("/oa/api/customer-archive", params={"page": page, "per_page": 97}).json()
        rows += body["items"]
        if page * body["per_page"] >= body["total"]:
            return rows
        page += 1


def crm_accounts(client: httpx.Client) -> list[dict]:
    rows, cursor = [], None
    while True:
        params = {"page_size": 113} | ({"cursor": cursor} if cursor else {})
        body = client.get("/crm/v1/accounts", params=params).json()
        rows += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            return rows


def test_cli_drift_changes_what_a_running_server_serves(world: World) -> None:
    state_file = world.data_dir / "sandbox" / "state.json"
    archive = app_tables()["oa_customer_archive"]
    stored = app_rows(world.data_dir, "oa_customer_archive")
    with (
        serve_app(sandbox_app(world.data_dir / "sandbox" / "apps.sqlite")) as base_url,
        httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as client,
    ):
        assert oa_archive(client) and list(oa_archive(client)[0]) == list(archive.fields)

        result = cli(
            world,
            "--add-field",
            "oa.customer_archive.wechat_id",
            "--drop-field",
            "oa.customer_archive.legal_rep",
        )
        assert result.returncode == 0, result.stderr
        assert "oa_customer_archive: added wechat_id; dropped legal_rep" in result.stdout
        assert json.loads(state_file.read_text())["drift"] == {
            "oa_customer_archive": {"added": ["wechat_id"], "dropped": ["legal_rep"]}
        }

        served = oa_archive(client)
        again = oa_archive(client)
        approvals = client.get("/oa/api/contract-approvals").json()["items"]

        drift.add_field("oa.customer_archive.legal_rep", state_file)  # undo both, live
        drift.drop_field("oa.customer_archive.wechat_id", state_file)
        restored = oa_archive(client)

    expected_fields = [f for f in archive.fields if f != "legal_rep"] + ["wechat_id"]
    assert len(served) == len(stored)
    assert all(list(r) == expected_fields for r in served)
    assert served == again  # added values are stable per record, request after request
    wechat = [r["wechat_id"] for r in served]
    present = [w for w in wechat if w is not None]
    assert 0.6 * len(served) < len(present) < len(served)  # mostly filled, sometimes null
    assert all(re.fullmatch(r"wxid_[a-z0-9]{10}", w) for w in present)
    assert len(set(present)) == len(present)
    by_key = {r[archive.key]: r for r in stored}
    for row in served:  # everything else is the stored row, untouched
        original = by_key[row[archive.key]]
        assert {k: v for k, v in row.items() if k != "wechat_id"} == {
            k: v for k, v in original.items() if k != "legal_rep"
        }
    assert list(approvals[0]) == list(app_tables()["oa_contract_approvals"].fields)  # other entity: no drift
    assert sorted(restored, key=lambda r: r[archive.key]) == stored
    assert "drift" not in json.loads(state_file.read_text())
    assert "legal_rep" in app_tables()["oa_customer_archive"].fields  # the registry is as it was


def test_crm_drift_reaches_pages_and_single_lookups(world: World) -> None:
    state_file = world.data_dir / "sandbox" / "state.json"
    stored = app_rows(world.data_dir, "crm_accounts")
    drift.drop_field("crm.accounts.industry", state_file)
    drift.add_field("crm.accounts.mobile_backup", state_file)
    try:
        with (
            serve_app(sandbox_app(world.data_dir / "sandbox" / "apps.sqlite")) as base_url,
            httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as client,
        ):
            served = crm_accounts(client)
            one = client.get(f"/crm/v1/accounts/{stored[0]['id']}").json()
    finally:
        drift.add_field("crm.accounts.industry", state_file)
        drift.drop_field("crm.accounts.mobile_backup", state_file)
    assert sorted(r["id"] for r in served) == [r["id"] for r in stored]  # the cursor still walks every row
    assert all("industry" not in r and "mobile_backup" in r for r in served)
    assert "industry" not in one and one["mobile_backup"] == next(
        r["mobile_backup"] for r in served if r["id"] == stored[0]["id"]
    )
    mobiles = [r["mobile_backup"] for r in served if r["mobile_backup"]]
    assert mobiles and all(re.fullmatch(r"\+861\d{10}", m) for m in mobiles)


def test_drift_mistakes_are_clear_errors(world: World) -> None:
    state_file = world.data_dir / "sandbox" / "state.json"
    with pytest.raises(ValueError, match="oa.customer_archive"):
        drift.add_field("oa.customers.wechat_id", state_file)
    with pytest.raises(ValueError, match="key"):
        drift.drop_field("oa.customer_archive.archive_id", state_file)
    with pytest.raises(ValueError, match="already serves"):
        drift.add_field("oa.customer_archive.legal_rep", state_file)
    with pytest.raises(ValueError, match="does not serve"):
        drift.drop_field("oa.customer_archive.shoe_size", state_file)
    result = cli(world, "--drop-field", "erp.customer_master.tax_no")
    assert result.returncode == 2 and "not <system>.<entity>.<field> of an HTTP entity" in result.stderr
    assert drift.read_drift(state_file) == {}
