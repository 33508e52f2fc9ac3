"""Extraction over real HTTP from the sandbox APIs: every pagination style, cursors, 429s."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from include.extract import http_api
from include.extract.runner import extract_entity
from include.registry import Pagination, load_sources
from tests.include.conftest import TOKEN, serve

HTTP_ENTITIES = [(s, e) for s in load_sources() if s.kind == "http" for e in s.entities]


def _stored(world, source, entity) -> dict[str, str]:
    """Key -> updated_at of every row the sandbox holds for an entity."""
    db = sqlite3.connect(world.data_dir / "sandbox" / "apps.sqlite")
    rows = db.execute(f"select {entity.key}, {entity.updated_at} from {source.name}_{entity.name}").fetchall()
    return dict(rows)


@pytest.fixture(scope="module")
def base_url(world):
    with serve(world.data_dir / "sandbox" / "apps.sqlite") as url:
        yield url


@pytest.mark.parametrize(("source", "entity"), HTTP_ENTITIES, ids=lambda x: getattr(x, "name", x))
def test_every_record_exactly_once_across_small_pages(world, base_url, source, entity):
    small = Pagination(style=source.pagination.style, page_size=37)
    with http_api.make_client(base_url, TOKEN) as client:
        pages = [records for records, _ in http_api.fetch_pages(client, entity.path, small, since=None)]
    keys = [r[entity.key] for page in pages for r in page]
    stored = _stored(world, source, entity)
    assert len(pages) >= len(stored) // 37
    assert sorted(keys) == sorted(stored)


@pytest.mark.parametrize("source_name", ["crm", "oa", "callcenter"])
def test_since_returns_only_later_changes(world, base_url, source_name):
    source = next(s for s in load_sources() if s.name == source_name)
    entity = next(e for e in source.entities if e.customer_entity)
    stored = _stored(world, source, entity)
    parsed = sorted(datetime.fromisoformat(v.replace("Z", "+00:00")) for v in stored.values())
    cut = parsed[len(parsed) * 3 // 4]
    with http_api.make_client(base_url, TOKEN) as client:
        pages = http_api.fetch_pages(client, entity.path, source.pagination, cut)
        got = [r for page, _ in pages for r in page]
    expected = (
        sum(1 for t in parsed if t >= cut)
        if source.pagination.style != "page"
        else sum(1 for t in parsed if t > cut)
    )
    assert len(got) == expected
    assert 0 < expected < len(parsed)


def test_wrong_token_is_a_clear_error(base_url):
    crm = next(s for s in load_sources() if s.name == "crm")
    with http_api.make_client(base_url, "wrong") as client, pytest.raises(PermissionError, match="password"):
        next(http_api.fetch_pages(client, "/crm/v1/accounts", crm.pagination, None))


def test_rate_limited_server_is_retried_until_complete(world):
    crm = next(s for s in load_sources() if s.name == "crm")
    stored = _stored(world, crm, crm.entity("contacts"))
    with (
        serve(world.data_dir / "sandbox" / "apps.sqlite", rate_limit=20) as url,
        http_api.make_client(url, TOKEN) as client,
    ):
        small = Pagination(style="cursor", page_size=max(1, len(stored) // 40))
        pages = http_api.fetch_pages(client, "/crm/v1/contacts", small, None)
        keys = [r["id"] for page, _ in pages for r in page]
    assert sorted(keys) == sorted(stored)


def test_incremental_extract_lands_everything_then_nothing_new(world, base_url, fresh_db):
    crm = next(s for s in load_sources() if s.name == "crm")
    accounts = crm.entity("accounts")
    with http_api.make_client(base_url, TOKEN) as client:
        first = extract_entity(crm, accounts, fresh_db.url, client=client)
    stored = _stored(world, crm, accounts)
    assert (first.received, first.inserted) == (len(stored), len(stored))
    assert first.high_water_mark == max(
        datetime.fromisoformat(v.replace("Z", "+00:00")) for v in stored.values()
    )
    with http_api.make_client(base_url, TOKEN) as client:
        second = extract_entity(crm, accounts, fresh_db.url, client=client)
    assert second.inserted == 0
    assert 0 < second.received < len(stored)  # only the overlap window is re-read
    with psycopg.connect(fresh_db.url) as conn:
        cursor = conn.execute(
            "select high_water_mark from ops.extract_state where entity = 'accounts'"
        ).fetchone()
        landed = conn.execute("select count(*), count(distinct _record_id) from raw_crm.accounts").fetchone()
    assert cursor[0] == first.high_water_mark.astimezone(UTC)
    assert landed == (len(stored), len(stored))


def test_nothing_is_lost_when_the_api_fails_times_out_and_throttles(world, fresh_db):
    from include.sandbox.faults import FaultConfig
    from tests.include.conftest import sandbox_app, serve_app

    registered = next(s for s in load_sources() if s.name == "callcenter")
    callcenter = registered.model_copy(update={"pagination": Pagination(style="offset", page_size=60)})
    tickets = callcenter.entity("tickets")
    stored = _stored(world, callcenter, tickets)
    faults = FaultConfig.parse("500:0.12,429:0.12,timeout:0.06,seed:5,retry_after:0.1,sleep:1.5")
    app = sandbox_app(world.data_dir / "sandbox" / "apps.sqlite", faults=faults)
    with serve_app(app) as url, http_api.make_client(url, TOKEN, timeout=0.5) as client:
        result = extract_entity(callcenter, tickets, fresh_db.url, client=client)
        injected = client.get("/_admin/faults").json()["injected"]
    assert injected["500"] > 0 and injected["429"] > 0 and injected["timeout"] > 0
    assert (result.received, result.inserted) == (len(stored), len(stored))
    with psycopg.connect(fresh_db.url) as conn:
        landed = {r[0] for r in conn.execute("select _record_id from raw_callcenter.tickets")}
    assert landed == set(stored)


def test_a_failed_run_resumes_from_its_last_committed_pages(world, base_url, fresh_db):
    """The network dies after six pages; the retry of the same run starts after the last commit."""
    registered = next(s for s in load_sources() if s.name == "crm")
    crm = registered.model_copy(update={"pagination": Pagination(style="cursor", page_size=25)})
    accounts = crm.entity("accounts")
    stored = _stored(world, crm, accounts)
    requested: list[httpx.URL] = []

    def cut_after_six_pages(request: httpx.Request) -> None:
        if len(requested) == 6:
            raise RuntimeError("network cable pulled")
        requested.append(request.url)

    with http_api.make_client(base_url, TOKEN) as client:
        client.event_hooks["request"] = [cut_after_six_pages]
        with pytest.raises(RuntimeError, match="cable"):
            extract_entity(crm, accounts, fresh_db.url, client=client, run_id="run-1", land_batch_rows=50)
    with psycopg.connect(fresh_db.url) as conn:
        committed = conn.execute("select count(*) from raw_crm.accounts").fetchone()[0]
        pages = conn.execute("select pages_committed from ops.extract_checkpoints").fetchone()[0]
        status = conn.execute("select status from ops.extract_runs").fetchone()[0]
    assert (committed, pages, status) == (150, 3, "failed")  # pages 1-6 in three commits of 50

    requested.clear()
    with http_api.make_client(base_url, TOKEN) as client:
        client.event_hooks["request"] = [lambda request: requested.append(request.url)]
        retry = extract_entity(crm, accounts, fresh_db.url, client=client, run_id="run-1", land_batch_rows=50)
    assert all("cursor" in url.params for url in requested)  # never the first page again
    assert retry.received == len(stored) - 150
    with psycopg.connect(fresh_db.url) as conn:
        landed = conn.execute("select count(*), count(distinct _record_id) from raw_crm.accounts").fetchone()
        leftover = conn.execute("select count(*) from ops.extract_checkpoints").fetchone()[0]
    assert landed == (len(stored), len(stored))
    assert leftover == 0
