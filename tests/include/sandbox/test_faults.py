"""Fault injection over real HTTP: seeded 500s, 429s and slow answers that never corrupt data."""

from __future__ import annotations

import time

import httpx
import pytest

from include.sandbox.faults import FaultConfig
from include.sandbox.server import create_app
from include.sandbox.stores import app_tables
from tests.include.conftest import TOKEN, World, sandbox_app, serve_app
from tests.include.sandbox.helpers import app_rows

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIST_PATHS = [t.path for t in app_tables().values()]


def test_env_string_parses_and_bad_strings_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C360_SANDBOX_FAULT_SLEEP", "2.5")
    config = FaultConfig.parse("500:0.1, 429:0.05,timeout:0.02,seed:7,retry_after:0.2")
    assert (config.p500, config.p429, config.timeout, config.seed) == (0.1, 0.05, 0.02, 7)
    assert (config.retry_after, config.sleep) == (0.2, 2.5)
    assert FaultConfig.parse("500:0.5").seed == 0 and FaultConfig.parse("500:0.5").retry_after == 1
    with pytest.raises(ValueError, match="kind one of"):
        FaultConfig.parse("502:0.1")
    with pytest.raises(ValueError, match="add up to 1.2"):
        FaultConfig.parse("500:0.7,429:0.5")
    with pytest.raises(ValueError):
        FaultConfig.parse("500:lots")


def test_sequence_is_seeded_and_matches_the_probabilities() -> None:
    config = FaultConfig(p500=0.1, p429=0.05, timeout=0.02, seed=7)
    outcomes = config.sequence(4000)
    assert outcomes == FaultConfig(p500=0.1, p429=0.05, timeout=0.02, seed=7).sequence(4000)
    assert outcomes != FaultConfig(p500=0.1, p429=0.05, timeout=0.02, seed=8).sequence(4000)
    shares = {k: outcomes.count(k) / len(outcomes) for k in ("500", "429", "timeout")}
    assert abs(shares["500"] - 0.1) < 0.02 and abs(shares["429"] - 0.05) < 0.015
    assert 0.005 < shares["timeout"] < 0.035
    assert FaultConfig().sequence(50) == [None] * 50


def test_list_requests_follow_the_seeded_sequence(world: World) -> None:
    config = FaultConfig(p500=0.3, p429=0.2, seed=7, retry_after=0.2)
    expected = config.sequence(40)
    assert {"500", "429", None} == set(expected)
    with serve_app(sandbox_app(world.data_dir / "sandbox" / "apps.sqlite", config)) as base_url:
        responses = []
        for i in range(40):
            # Health and single-record reads between list requests neither fault nor draw.
            assert httpx.get(f"{base_url}/health").status_code == 200
            responses.append(httpx.get(base_url + LIST_PATHS[i % len(LIST_PATHS)], headers=AUTH))
        status = httpx.get(f"{base_url}/_admin/faults", headers=AUTH).json()
    got = [{500: "500", 429: "429", 200: None}[r.status_code] for r in responses]
    assert got == expected
    throttled = responses[expected.index("429")]
    assert throttled.headers["Retry-After"] == "0.2"
    assert throttled.headers["X-Sandbox-Fault"] == "429"
    assert throttled.json()["error"] == "rate_limited"
    failed = responses[expected.index("500")]
    assert failed.json() == {"error": "internal_error", "detail": failed.json()["detail"]}
    assert "injected" in failed.json()["detail"]
    assert status["requests"] == 40
    assert status["injected"] == {"500": expected.count("500"), "429": expected.count("429"), "timeout": 0}


def _fetch_all_with_retries(client: httpx.Client, table) -> tuple[list[dict], int]:
    """Page through one entity, retrying 500/429 as a client should; returns rows and retries made."""
    rows, retries = [], 0
    params: dict = {"crm": {"page_size": 89}, "oa": {"page": 1, "per_page": 61}, "callcenter": {"limit": 73}}[
        table.system
    ]
    url = table.path
    while True:
        response = client.get(url, params=params)
        if response.status_code in (429, 500):
            retries += 1
            time.sleep(float(response.headers.get("Retry-After", 0)))
            continue
        assert response.status_code == 200, response.text
        body = response.json()
        if table.system == "crm":
            rows += body["data"]
            if not body["next_cursor"]:
                return rows, retries
            params = {"page_size": 89, "cursor": body["next_cursor"]}
        elif table.system == "oa":
            rows += body["items"]
            if params["page"] * params["per_page"] >= body["total"]:
                return rows, retries
            params = {**params, "page": params["page"] + 1}
        else:
            rows += body["results"]
            if not body["next"]:
                return rows, retries
            link = httpx.URL(body["next"])  # httpx drops a URL's query when params are passed too
            url, params = link.path, dict(link.params)


@pytest.mark.parametrize("table_name", ["crm_accounts", "oa_customer_archive", "callcenter_tickets"])
def test_retried_requests_get_the_right_pages(world: World, table_name: str) -> None:
    table = app_tables()[table_name]
    config = FaultConfig(p500=0.25, p429=0.15, seed=3, retry_after=0.01)
    with (
        serve_app(sandbox_app(world.data_dir / "sandbox" / "apps.sqlite", config)) as base_url,
        httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as client,
    ):
        served, retries = _fetch_all_with_retries(client, table)
    stored = app_rows(world.data_dir, table_name)
    assert retries > 0
    assert len(served) == len(stored)
    assert sorted(served, key=lambda r: r[table.key]) == stored


def test_timeouts_and_the_runtime_switch(world: World) -> None:
    with serve_app(sandbox_app(world.data_dir / "sandbox" / "apps.sqlite")) as base_url:
        path = base_url + "/oa/api/contract-approvals"
        assert httpx.get(f"{base_url}/_admin/faults").status_code == 401
        assert httpx.put(f"{base_url}/_admin/faults", json={"p500": 1}).status_code == 401
        invalid = httpx.put(f"{base_url}/_admin/faults", headers=AUTH, json={"p500": 0.8, "p429": 0.8})
        assert invalid.status_code == 422
        assert httpx.get(path, headers=AUTH).status_code == 200  # nothing configured yet

        on = httpx.put(f"{base_url}/_admin/faults", headers=AUTH, json={"timeout": 1, "sleep": 0.6})
        assert on.status_code == 200 and on.json()["active"] and on.json()["config"]["sleep"] == 0.6
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(path, headers=AUTH, timeout=0.2)
        started = time.monotonic()
        patient = httpx.get(path, headers=AUTH, timeout=5)
        assert time.monotonic() - started >= 0.6
        assert patient.status_code == 200 and patient.json()["items"]  # slow, but the right answer

        off = httpx.put(f"{base_url}/_admin/faults", headers=AUTH, json={})
        assert off.json()["active"] is False
        started = time.monotonic()
        assert httpx.get(path, headers=AUTH, timeout=5).status_code == 200
        assert time.monotonic() - started < 0.5
        status = httpx.get(f"{base_url}/_admin/faults", headers=AUTH).json()
        assert status["requests"] == 0 and status["injected"]["timeout"] == 0  # reset by the PUT


def test_faults_come_from_the_environment(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C360_SANDBOX_FAULTS", "500:1,seed:9")
    app = create_app(token=TOKEN, db_path=world.data_dir / "sandbox" / "apps.sqlite")
    with serve_app(app) as base_url:
        listed = httpx.get(base_url + "/crm/v1/contacts", headers=AUTH)
        status = httpx.get(f"{base_url}/_admin/faults", headers=AUTH).json()
    assert listed.status_code == 500
    assert status["config"]["p500"] == 1 and status["config"]["seed"] == 9
    assert status["config"]["sleep"] == 5  # C360_SANDBOX_FAULT_SLEEP's default

    monkeypatch.setenv("C360_SANDBOX_FAULTS", "oops")
    with pytest.raises(ValueError, match="C360_SANDBOX_FAULTS"):
        create_app(token=TOKEN, db_path=world.data_dir / "sandbox" / "apps.sqlite")
