"""An agent's contact change in the call center: the caller, the change record, the ground truth and
the change events on the call center's channel."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.config import PgUrl
from include.sandbox.changes import agent_changes_contact
from include.sandbox.generator import generate
from tests.include.conftest import AS_OF, use_data_dir
from tests.include.sandbox.helpers import app_rows, read_csv
from tests.include.sandbox.test_deletes_and_events import REDIS_URL, received, subscriber  # noqa: F401

NOW = datetime(2026, 1, 3, 8, 15, 30, 123000, tzinfo=UTC)


def test_agent_change_updates_the_caller_records_the_change_and_publishes_it(
    fresh_db: PgUrl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    subscriber,  # noqa: F811
) -> None:
    use_data_dir(monkeypatch, tmp_path)
    generate(300, 5, as_of=AS_OF, erp_url=fresh_db.url)
    caller = app_rows(tmp_path, "callcenter_callers")[0]
    monkeypatch.setenv("C360_SANDBOX_REDIS_URL", REDIS_URL)

    change_id = agent_changes_contact(caller["caller_id"], "phone", "13912345678", agent_id="A7", now=NOW)

    after = {r["caller_id"]: r for r in app_rows(tmp_path, "callcenter_callers")}[caller["caller_id"]]
    assert after["phone"] == "13912345678"
    assert after["updated_at"] == "2026-01-03T08:15:30.123+00:00"
    (change,) = [r for r in app_rows(tmp_path, "callcenter_contact_changes") if r["change_id"] == change_id]
    assert (change["caller_id"], change["field"], change["old_value"], change["new_value"]) == (
        caller["caller_id"],
        "phone",
        caller["phone"],
        "13912345678",
    )
    assert change["agent_id"] == "A7"
    truth = read_csv(tmp_path / "ground_truth" / "changes.csv")[-1]
    assert (truth["source_record_id"], truth["field"], truth["new_value"], truth["kind"]) == (
        caller["caller_id"],
        "phone",
        "13912345678",
        "update",
    )
    events = received(subscriber, lambda m: m["changed_at"] == NOW.isoformat())
    assert {(e["entity"], tuple(e["ids"])) for e in events} == {
        ("callers", (caller["caller_id"],)),
        ("contact_changes", (change_id,)),
    }


def test_agent_changes_only_contact_fields_of_existing_callers(
    fresh_db: PgUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_data_dir(monkeypatch, tmp_path)
    generate(100, 5, as_of=AS_OF, erp_url=fresh_db.url)
    with pytest.raises(ValueError, match="phone"):
        agent_changes_contact("CC0001", "name", "x")
    with pytest.raises(KeyError, match="no caller"):
        agent_changes_contact("NOPE", "email", "a@b.cn")
