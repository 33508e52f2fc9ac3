"""Incremental identity resolution equals a full rebuild on the same data.

The raw fixture is built whole; then two rounds of changes land and are applied incrementally: new
records (one joining an existing customer), a changed phone, a deletion, an erasure, a steward
decision, and a mobile number that four new records push over the guard (its two existing holders
must lose their evidence although neither changed) and that a later edit brings back under it (the
evidence must come back: only the old value tells). After each round the incremental state is
compared with a full rebuild of the same models on the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from include.config import PgUrl
from tests.conftest import create_database, drop_database
from tests.dbt.conftest import run_dbt
from tests.dbt.raw_fixture import build_raw_database
from tests.dbt.test_identity_keys import Warehouse as KeysWarehouse

IDENTITY = "+int_golden_attributes +customer_crosswalk"
#: The models a full refresh rebuilds (the key assignments and the registry never are: they hold
#: the stable keys).
REBUILT = {
    "evidence": "select record_id_a, record_id_b, rule_name, value_a, value_b, similarity, score "
    "from intermediate.int_identity_evidence",
    "edges": "select record_id_a, record_id_b, match_score, rules, decided_by "
    "from intermediate.int_identity_edges",
    "components": "select customer_record_id, component_id, has_conflicting_anchors "
    "from intermediate.int_identity_components",
    "clusters": "select customer_record_id, cluster_id, oversized_component_id, component_size "
    "from intermediate.int_identity_clusters",
    "records": "select customer_record_id, record_hash from intermediate.int_customer_records",
    "golden": "select customer_key, attribute, value, source_system, source_record_id "
    "from intermediate.int_golden_attributes",
}


class Warehouse(KeysWarehouse):
    """The identity-keys tests' warehouse (query, execute, land), building identity up to the
    golden records instead of the marts."""

    def run(self, *extra: str) -> None:
        result = run_dbt(["run", "--select", IDENTITY, *extra], self.db, self.tmp)
        assert result.returncode == 0, result.stdout[-4000:]

    def state(self) -> dict[str, set[tuple]]:
        tables = {name: set(self.query(sql)) for name, sql in REBUILT.items()}
        partition: dict[str, set[str]] = {}
        for key, record in self.query(
            "select customer_key, source_system || ':' || source_record_id from marts.customer_crosswalk"
        ):
            partition.setdefault(key, set()).add(record)
        tables["customers"] = {tuple(sorted(records)) for records in partition.values()}
        return tables

    def assert_incremental_equals_full(self) -> None:
        incremental = self.state()
        (written,) = self.query("select max(changed_at) from intermediate.int_customer_key_assignments")
        self.run("--full-refresh")
        full = self.state()
        for name in incremental:
            assert incremental[name] == full[name], (
                f"{name}: only incremental {sorted(incremental[name] - full[name])[:5]}, "
                f"only full {sorted(full[name] - incremental[name])[:5]}"
            )
        # the same clusters: the full rebuild moved no key
        latest = self.query("select max(changed_at) from intermediate.int_customer_key_assignments")
        assert latest == [written]


def person(record_id: str, name: str, mobile: str) -> dict:
    return {"id": record_id, "account_name": name, "account_type": "person", "phone": mobile,
            "updated_at": datetime.now(UTC).isoformat()}  # fmt: skip


@pytest.fixture(scope="module")
def wh(pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    db = create_database(pg_server, "c360_idincr")
    try:
        build_raw_database(db.url)
        yield Warehouse(db, tmp_path_factory.mktemp("dbt_identity_incremental"))
    finally:
        drop_database(db)


def test_incremental_identity_equals_full_rebuild(wh: Warehouse) -> None:
    wh.run()
    # a mobile number two existing records share as evidence (neither changed below)
    ((mobile, pair),) = wh.query(
        "select mobile_e164, array_agg(customer_record_id order by customer_record_id) "
        "from intermediate.int_customer_records where mobile_e164 is not null "
        "group by mobile_e164 having count(*) = 2 "
        "and bool_and(customer_record_id not in "
        "('crm:A003', 'crm:A009', 'erp:C004', 'erp:C002', 'crm:A002')) "
        "order by mobile_e164 limit 1"
    )
    local = "1" + mobile.removeprefix("+861")

    def mobile_rules() -> set[str]:
        rows = wh.query(
            "select rule_name from intermediate.int_identity_evidence "
            "where record_id_a = %s and record_id_b = %s and matched_field = 'mobile_e164'",
            tuple(pair),
        )
        return {rule for (rule,) in rows}

    rules_before = mobile_rules()
    # the rules that keep the global limit of five holders (same_mobile_similar_name allows eight)
    assert rules_before - {"same_mobile_similar_name"}
    keys_before = dict(
        wh.query("select customer_record_id, customer_key from intermediate.int_customer_key_assignments")
    )

    # Round 1: new, changed, deleted, erased records, a steward decision, the guard pushed over.
    wh.land("crm", "accounts", "A901", person("A901", "孙新客", "13611112222"))
    wh.land("callcenter", "callers", "CC901",
            {"caller_id": "CC901", "name": "孙新客", "phone": "136-1111-2222"})  # fmt: skip
    for i in range(4):
        lead = {"lead_name": f"路人{i}", "mobile": local, "source_file": "guard.csv", "source_row": i}
        wh.land("marketing", "leads", f"guard:{i}", lead)
    wh.land("crm", "accounts", "A003", person("A003", "王五", "13700009999"))
    wh.land("crm", "accounts", "A009", {"id": "A009", "_deleted": True}, deleted=True)
    erased = "erp:C004"
    wh.execute(
        "insert into ops.erasure_tombstones (customer_key, source_system, source_record_id) "
        "values (%s, 'erp', 'C004')",
        (keys_before[erased],),
    )
    wh.execute(
        "insert into steward.identity_overrides (record_id_a, record_id_b, decision, reason) "
        "values ('erp:C002', 'crm:A002', 'never', '不同法人')"
    )
    wh.run()
    assert mobile_rules() == rules_before & {"same_mobile_similar_name"}, (
        "six holders: the mobile is no evidence any more but for the rule allowing eight"
    )
    records = dict(wh.query("select customer_record_id, record_hash from intermediate.int_customer_records"))
    assert "crm:A901" in records and "crm:A009" not in records and erased not in records
    wh.assert_incremental_equals_full()

    # Round 2: one of the four changes its number: five holders, the pair's evidence is back.
    lead = {"lead_name": "路人0", "mobile": "13600000000", "source_file": "guard.csv", "source_row": 0}
    wh.land("marketing", "leads", "guard:0", lead)
    wh.run()
    assert mobile_rules() == rules_before, "five holders again: the untouched pair's evidence is recomputed"
    wh.assert_incremental_equals_full()


def test_an_unchanged_rerun_logs_and_rewrites_nothing(wh: Warehouse) -> None:
    if not wh.query("select to_regclass('intermediate.int_customer_records') is not null")[0][0]:
        wh.run()
    wh.run()
    logs = ("int_customer_record_changes", "int_identity_touched_records", "int_identity_affected_records")
    counts = {table: wh.query(f"select count(*) from intermediate.{table}")[0][0] for table in logs}
    wh.run()
    assert {table: wh.query(f"select count(*) from intermediate.{table}")[0][0] for table in counts} == counts
