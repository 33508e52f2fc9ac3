"""Stable customer keys across dbt runs: reruns, new customers, merges (aliases), splits, deletions,
steward overrides and the giant-cluster guard, on the raw fixture in a database of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from include.config import PgUrl
from tests.conftest import create_database, drop_database
from tests.dbt.conftest import run_dbt
from tests.dbt.raw_fixture import build_raw_database

IDENTITY_MODELS = " ".join(
    f"+{model}"
    for model in (
        "dim_customer",
        "customer_crosswalk",
        "customer_key_lookup",
        "identity_link_evidence",
        "identity_oversized_clusters",
        "customer_golden_provenance",
    )
)


@dataclass
class Warehouse:
    db: PgUrl
    tmp: Path

    def run(self, *extra: str) -> None:
        result = run_dbt(["run", "--select", IDENTITY_MODELS, *extra], self.db, self.tmp)
        assert result.returncode == 0, result.stdout[-4000:]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db.url) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple = ()) -> None:
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            conn.execute(sql, params)

    def customer_keys(self) -> dict[str, str]:
        rows = self.query(
            "select source_system, source_record_id, customer_key from marts.customer_crosswalk"
        )
        return {f"{system}:{record}": key for system, record, key in rows}

    def lookup(self, key: str) -> tuple[str, str | None]:
        (row,) = self.query(
            "select key_status, current_customer_key from marts.customer_key_lookup where customer_key = %s",
            (key,),
        )
        return row

    def golden_rows(self, key: str) -> int:
        """The key's golden values and their provenance rows (the two must agree)."""
        ((golden,),) = self.query(
            "select count(*) from intermediate.int_golden_attributes where customer_key = %s", (key,)
        )
        ((provenance,),) = self.query(
            "select count(*) from marts.customer_golden_provenance where customer_key = %s", (key,)
        )
        assert golden == provenance, f"{key}: {golden} golden values, {provenance} provenance rows"
        return golden

    def land(self, source: str, entity: str, record_id: str, payload: dict, deleted: bool = False) -> None:
        self.execute(
            f'insert into "raw_{source}"."{entity}" (_batch_id, _loaded_at, _source, _record_id, '
            "_content_hash, _source_updated_at, _deleted, payload) "
            "values ('test', now(), %s, %s, md5(%s), now(), %s, %s)",
            (source, record_id, json.dumps(payload) + str(deleted), deleted, json.dumps(payload)),
        )

    def steward(self, a: str, b: str, decision: str, reason: str) -> None:
        self.execute(
            "insert into steward.identity_overrides (record_id_a, record_id_b, decision, reason) "
            "values (%s, %s, %s, %s)",
            (a, b, decision, reason),
        )


@pytest.fixture(scope="module")
def wh(pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    db = create_database(pg_server, "c360_keys")
    try:
        build_raw_database(db.url)
        yield Warehouse(db, tmp_path_factory.mktemp("dbt_keys"))
    finally:
        drop_database(db)


def test_keys_stay_put_through_reruns_merges_splits_and_deletions(wh: Warehouse) -> None:
    wh.run()
    first = wh.customer_keys()
    issued = set(first.values())
    assert len(issued) == len(wh.query("select * from marts.dim_customer"))

    # An identical rerun gives identical keys and writes no assignment.
    (written,) = wh.query("select max(changed_at) from intermediate.int_customer_key_assignments")
    wh.run()
    assert wh.customer_keys() == first
    assert wh.query("select max(changed_at) from intermediate.int_customer_key_assignments") == [written]

    # A new customer gets a new key; nobody else's key moves.
    wh.land(
        "crm",
        "accounts",
        "A900",
        {
            "id": "A900",
            "account_name": "赵新客",
            "account_type": "person",
            "phone": "13511112222",
            "updated_at": datetime.now(UTC).isoformat(),
        },
    )
    wh.run()
    second = wh.customer_keys()
    new_key = second.pop("crm:A900")
    assert second == first
    assert new_key not in issued
    issued.add(new_key)
    assert wh.golden_rows(new_key) > 0

    # Merge: a steward says A900 is the customer of C007 (whose key is older): the older key survives,
    # the newer one becomes an alias that resolves to it.
    old_key = first["erp:C007"]
    wh.steward("crm:A900", "erp:C007", "same", "客户来电核实: 同一人")
    wh.run()
    merged = wh.customer_keys()
    assert merged["crm:A900"] == merged["erp:C007"] == merged["oa:OA7"] == old_key
    assert wh.lookup(new_key) == ("alias", old_key)
    assert wh.query("select count(*) from marts.dim_customer where customer_key = %s", (new_key,)) == [(0,)]
    assert wh.golden_rows(new_key) == 0, "a merged-away key keeps no golden values"
    assert wh.query(
        "select rule_name, steward_reason from marts.identity_link_evidence where record_id_a = 'crm:A900'"
    ) == [("steward", "steward: 客户来电核实: 同一人")]

    # Split: the steward says C007 and OA7 are never the same: the larger part (C007 + A900) keeps the
    # key, OA7 gets a key never given before.
    wh.steward("erp:C007", "oa:OA7", "never", "不同法人")
    wh.run()
    split = wh.customer_keys()
    assert split["erp:C007"] == split["crm:A900"] == old_key
    assert split["oa:OA7"] not in issued
    issued.add(split["oa:OA7"])

    # Deletion: a record every source dropped keeps its key, inactive; its key is retired, never reused.
    lone_key = split["crm:A004"]
    wh.land("crm", "accounts", "A004", {"id": "A004", "_deleted": True}, deleted=True)
    wh.run()
    after = wh.customer_keys()
    assert "crm:A004" not in after
    assert wh.lookup(lone_key) == ("retired", None)
    assert wh.golden_rows(lone_key) == 0, "a retired key keeps no golden values"
    assert {k: v for k, v in after.items()} == {k: v for k, v in split.items() if k != "crm:A004"}

    # Every key ever given is in the lookup, once.
    assert wh.query("select count(*) from marts.customer_key_lookup") == [(len(issued),)]


def test_an_erased_record_leaves_identity_resolution_and_its_key_is_retired(wh: Warehouse) -> None:
    record = {"id": "A950", "account_name": "钱删除", "account_type": "person", "phone": "13522223333"}
    wh.land("crm", "accounts", "A950", {**record, "updated_at": datetime.now(UTC).isoformat()})
    wh.run()
    key = wh.customer_keys()["crm:A950"]
    wh.execute(
        "insert into ops.erasure_tombstones (customer_key, source_system, source_record_id) "
        "values (%s, 'crm', 'A950')",
        (key,),
    )
    wh.run()
    assert "crm:A950" not in wh.customer_keys()
    assert wh.lookup(key) == ("retired", None)  # the key stays, as a tombstone, never given again
    assert wh.query("select count(*) from marts.dim_customer where customer_key = %s", (key,)) == [(0,)]


def test_a_record_tied_to_two_companies_by_name_alone_joins_neither(wh: Warehouse) -> None:
    """华信科技 names two companies with different credit codes (erp:C008 Beijing, crm:A008 Shanghai):
    a record that only says 华信科技, with no city, must not chain them into one customer, nor join
    either: a company-name key with a city unknown is weak evidence, so it links to neither."""
    if not wh.query("select to_regclass('marts.customer_crosswalk') is not null")[0][0]:
        wh.run()
    before = wh.customer_keys()
    wh.land("oa", "customer_archive", "OA-HX", {"archive_id": "OA-HX", "customer_name": "华信科技有限公司"})
    wh.run()
    after = wh.customer_keys()
    assert after["erp:C008"] == before["erp:C008"] != after["crm:A008"] == before["crm:A008"]
    assert after["oa:OA-HX"] not in (after["erp:C008"], after["crm:A008"])
    assert wh.query(
        "select rule_name, score::float from intermediate.int_identity_evidence "
        "where 'oa:OA-HX' in (record_id_a, record_id_b) order by 1"
    ) == [("same_company_name", 0.7), ("same_company_name", 0.7)]
    assert wh.query(
        "select count(*) from intermediate.int_identity_edges where 'oa:OA-HX' in (record_id_a, record_id_b)"
    ) == [(0,)]


def test_a_record_bridging_two_credit_codes_joins_only_its_stronger_link(wh: Warehouse) -> None:
    """OA-BR shares erp:C008's landline (北京华信科技, one credit code) and crm:A008's email and name key
    (上海华信科技, another): both links pass the threshold, so the first pass puts the two companies in
    one component. Clustered strongest link first, OA-BR joins A008 (email + same name, 0.9993) and the
    link to C008 (landline + name, 0.9985), which would join the second credit code, is cut."""
    if not wh.query("select to_regclass('marts.customer_crosswalk') is not null")[0][0]:
        wh.run()
    wh.land(
        "oa",
        "customer_archive",
        "OA-BR",
        {
            "archive_id": "OA-BR",
            "customer_name": "华信科技有限公司",
            "contact_phone": "010-88887777",
            "contact_email": "hr@huaxin-sh.com",
        },
    )
    wh.run()
    links = wh.query(
        "select least(record_id_a, record_id_b), match_score::float from intermediate.int_identity_edges "
        "where 'oa:OA-BR' in (record_id_a, record_id_b) order by 1"
    )
    scores = [(record, round(score, 4)) for record, score in links]
    assert scores == [("crm:A008", 0.9993), ("erp:C008", 0.9985)]
    keys = wh.customer_keys()
    assert keys["oa:OA-BR"] == keys["crm:A008"] != keys["erp:C008"]
    wh.land("oa", "customer_archive", "OA-BR", {"archive_id": "OA-BR"}, deleted=True)
    wh.run()


def test_company_names_differing_in_legal_form_landline_or_email_domain_are_no_evidence(
    wh: Warehouse,
) -> None:
    """Four more records with erp:C008's name key and city (北京华信科技): a 股份有限公司 (G2), one with
    another landline than C008's (G3), two with emails of different domains (G1, G4). Company-name
    evidence holds only between records that do not differ in legal form, landline or email domain
    (both present); the name key's six holders are within the company-name rules' own limit (30)."""
    if not wh.query("select to_regclass('marts.customer_crosswalk') is not null")[0][0]:
        wh.run()
    variants = {
        "OA-G1": {"customer_name": "北京华信科技有限公司", "contact_email": "info@huaxin.com"},
        "OA-G2": {"customer_name": "北京华信科技股份有限公司"},
        "OA-G3": {"customer_name": "北京华信科技有限公司", "contact_phone": "010-66661111"},
        "OA-G4": {"customer_name": "北京华信科技有限公司", "contact_email": "info@huaxin-bj.cn"},
    }
    for record_id, payload in variants.items():
        wh.land("oa", "customer_archive", record_id, {"archive_id": record_id, **payload})
    wh.run()
    evidence = wh.query(
        "select least(record_id_a, record_id_b), greatest(record_id_a, record_id_b) "
        "from intermediate.int_identity_evidence "
        "where rule_name = 'same_company_name_same_city' and record_id_a <> 'crm:A008' "
        "and record_id_b <> 'crm:A008' order by 1, 2"
    )
    assert [(a, b) for a, b in evidence if "C008" in a + b or "OA-G" in a + b] == [
        ("erp:C008", "oa:OA-G1"),
        ("erp:C008", "oa:OA-G4"),
        ("oa:OA-G1", "oa:OA-G3"),
        ("oa:OA-G3", "oa:OA-G4"),
    ]
    for record_id in variants:
        wh.land("oa", "customer_archive", record_id, {"archive_id": record_id}, deleted=True)
    wh.run()


def test_a_cluster_over_the_size_limit_is_not_merged_but_reported(wh: Warehouse) -> None:
    if not wh.query("select to_regclass('marts.customer_crosswalk') is not null")[0][0]:
        wh.run()  # run alone: the story above has not built the warehouse
    before = wh.customer_keys()
    group = ["crm:A001", "erp:C001", "oa:OA1", "marketing:a1b2c3d4e5f60718:2"]
    assert len({before[r] for r in group}) == 1
    identity = _identity_vars(max_cluster_size=3)
    wh.run("--vars", json.dumps({"identity": identity}))
    after = wh.customer_keys()
    assert len({after[r] for r in group}) == 4  # kept apart
    assert after["crm:A001"] == before["crm:A001"]  # one part keeps the key, the others get new ones
    assert wh.query("select component_id, component_size from marts.identity_oversized_clusters") == [
        ("crm:A001", 4)
    ]


def test_connected_components_follow_chains_and_cycles(wh: Warehouse) -> None:
    rows = wh.query(
        "select node_id, component_id from intermediate.connected_components($$ "
        "select * from (values ('r1','r4'), ('r3','r4'), ('r3','r5'), ('r2','r5'), ('r7','r8'), ('r8','r9'), "
        "('r9','r7')) as e(a, b) $$) order by 1"
    )
    assert dict(rows) == {f"r{i}": "r1" for i in (1, 2, 3, 4, 5)} | {f"r{i}": "r7" for i in (7, 8, 9)}


def _anchored(edges: str, anchors: str) -> str:
    return (
        "select node_id, component_id "
        f"from intermediate.anchored_components($${edges}$$, $${anchors}$$) order by 1"
    )


def test_anchored_components_cut_the_weaker_link_to_a_second_anchor(wh: Warehouse) -> None:
    # a1 (anchor X) and b1 (anchor Y); r2 links to a1 at 0.97 and to b1 at 0.92: joins a1 only; r3 follows
    # b1 (0.95), r4 hangs off r3 (0.90); r5 is tied (0.95) to a1 and b1: it stays alone.
    rows = wh.query(
        _anchored(
            "select * from (values ('a1','r2',0.97), ('b1','r2',0.92), ('b1','r3',0.95), ('r3','r4',0.90), "
            "('a1','r5',0.95), ('b1','r5',0.95)) as e(a, b, s)",
            "select * from (values ('a1','X'), ('b1','Y')) as n(node, anchor)",
        )
    )
    assert dict(rows) == {"a1": "a1", "r2": "a1", "b1": "b1", "r3": "b1", "r4": "b1", "r5": "r5"}


def test_anchored_components_keep_records_of_one_anchor_together(wh: Warehouse) -> None:
    # two records of anchor X joined through an unanchored one; a third anchor Y only weakly tied
    rows = wh.query(
        _anchored(
            "select * from (values ('x1','m',0.9), ('m','x2',0.9), ('x2','y',0.95)) as e(a, b, s)",
            "select * from (values ('x1','X'), ('x2','X'), ('y','Y')) as n(node, anchor)",
        )
    )
    assert dict(rows) == {"m": "m", "x1": "m", "x2": "m", "y": "y"}


def _collations(wh: Warehouse) -> dict[str, str]:
    rows = wh.query(
        "select c.relname || '.' || a.attname, coalesce(co.collname, '') "
        "from pg_attribute as a "
        "inner join pg_class as c on a.attrelid = c.oid "
        "inner join pg_namespace as n on c.relnamespace = n.oid "
        "left join pg_collation as co on a.attcollation = co.oid "
        "where n.nspname in ('intermediate', 'marts') and c.relkind = 'r' and a.attnum > 0"
    )
    return dict(rows)


def test_record_ids_and_match_fields_compare_byte_by_byte_and_keys_keep_the_database_collation(
    wh: Warehouse,
) -> None:
    wh.run()
    collations = _collations(wh)
    byte_ordered = [
        "int_customer_records.customer_record_id",
        "int_customer_records.mobile_e164",
        "int_customer_records.email",
        "int_customer_records.uscc",
        "int_customer_records.name_match_key",
        "int_customer_records.match_city",
        "int_identity_evidence_part_1.record_id_a",
        "int_identity_evidence_part_2.record_id_b",
        "int_identity_edges.record_id_a",
        "int_identity_components.customer_record_id",
        "int_identity_components.component_id",
        "int_identity_clusters.cluster_id",
        "int_customer_key_assignments.customer_record_id",
    ]
    database_collation = [
        "int_customer_records.customer_name",
        "int_customer_records.source_record_id",
        "int_identity_evidence_part_1.value_a",
        "int_customer_key_assignments.customer_key",
        "int_customer_key_registry.customer_key",
        "int_golden_attributes.value",
        "dim_customer.customer_key",
        "dim_customer.email",
        "customer_crosswalk.customer_key",
        "customer_crosswalk.source_record_id",
        "identity_link_evidence.customer_key",
        "identity_link_evidence.record_id_a",
    ]
    assert {c: collations[c] for c in byte_ordered} == dict.fromkeys(byte_ordered, "C")
    assert {c: collations[c] for c in database_collation} == dict.fromkeys(database_collation, "default")


def test_key_assignments_written_before_byte_ordered_ids_are_converted_and_keep_their_keys(
    wh: Warehouse,
) -> None:
    wh.run()
    keys = wh.customer_keys()
    wh.execute(
        "alter table intermediate.int_customer_key_assignments "
        'alter column customer_record_id type text collate "default"'
    )
    assert _collations(wh)["int_customer_key_assignments.customer_record_id"] == "default"
    wh.run()
    assert _collations(wh)["int_customer_key_assignments.customer_record_id"] == "C"
    assert wh.customer_keys() == keys


def _identity_vars(**changes) -> dict:
    import yaml

    from include.config import DBT_PROJECT_DIR

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return {**project["vars"]["identity"], **changes}
