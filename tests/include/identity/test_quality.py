"""Quality scoring on tiny resolutions whose figures are worked out by hand, on a real PostgreSQL."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from itertools import combinations
from pathlib import Path

import psycopg
import pytest

from include.config import PgUrl
from include.identity.quality import (
    QualityInputError,
    report_lines,
    score_resolution,
    score_warehouse,
)
from include.sandbox.changes import CHANGE_COLUMNS


def write_truth(folder: Path, links: dict[tuple[str, str], str], deleted: list[tuple[str, str]] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "links.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("source_system", "entity", "source_record_id", "true_customer_id"))
        writer.writerows((system, "e", rid, truth) for (system, rid), truth in links.items())
    if deleted:
        with open(folder / "changes.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CHANGE_COLUMNS)
            writer.writerows(("2026-01-02T00:00:00+00:00", s, "e", r, "", "", "delete") for s, r in deleted)
            writer.writerow(("2026-01-02T00:00:00+00:00", "crm", "e", "x9", "email", "a@b.cn", "update"))
    return folder


def write_crosswalk(url: str, rows: dict[tuple[str, str], str], relation: str = "marts.customer_crosswalk"):
    with psycopg.connect(url) as conn:
        conn.execute(f"create schema if not exists {relation.split('.')[0]}")
        conn.execute(f"drop table if exists {relation}")
        columns = "source_system text, source_record_id text, customer_key text"
        conn.execute(f"create table {relation} ({columns})")
        with conn.cursor().copy(f"copy {relation} from stdin") as cp:
            for (system, rid), key in rows.items():
                cp.write_row((system, rid, key))


# Truth: T1 = {a, b, c}, T2 = {d, e}, T3 = {f}.   True pairs: 3 + 1 + 0 = 4.
TRUTH = {
    ("crm", "a"): "T1",
    ("erp", "b"): "T1",
    ("oa", "c"): "T1",
    ("crm", "d"): "T2",
    ("erp", "d"): "T2",  # same id in another system is another record
    ("crm", "f"): "T3",
}


def test_perfect_resolution(fresh_db: PgUrl, tmp_path: Path):
    truth = write_truth(tmp_path, TRUTH)
    write_crosswalk(fresh_db.url, {k: f"K{v}" for k, v in TRUTH.items()})
    r = score_warehouse(fresh_db.url, truth)
    assert (r.precision, r.recall, r.f1) == (1.0, 1.0, 1.0)
    assert (r.predicted_pairs, r.true_pairs, r.true_positive_pairs) == (4, 4, 4)
    assert (r.false_merge_clusters, r.split_customers, r.exact_clusters) == (0, 0, 3)
    assert (r.predicted_clusters, r.true_customers, r.singleton_clusters) == (3, 3, 1)
    assert (r.largest_cluster, r.largest_true_customer, r.records_scored) == (3, 3, 6)
    assert r.precision_met and r.recall_met


def test_a_split_and_a_false_merge(fresh_db: PgUrl, tmp_path: Path):
    # Predicted: K1 = {a, b}, K2 = {c, f}, K3 = {crm:d, erp:d}.
    #   predicted pairs: 1 + 1 + 1 = 3; right ones: (a, b) and (d, d) = 2; false: (c, f).
    #   missed: (a, c) and (b, c) of T1's 3 pairs.  precision 2/3, recall 2/4, F1 = 4/7.
    truth = write_truth(tmp_path, TRUTH)
    predicted = {
        ("crm", "a"): "K1",
        ("erp", "b"): "K1",
        ("oa", "c"): "K2",
        ("crm", "f"): "K2",
        ("crm", "d"): "K3",
        ("erp", "d"): "K3",
    }
    write_crosswalk(fresh_db.url, predicted)
    r = score_warehouse(fresh_db.url, truth)
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(2 / 4)
    assert r.f1 == pytest.approx(4 / 7)
    assert (r.false_pairs, r.missed_pairs) == (1, 2)
    assert r.false_merge_clusters == 1  # K2 holds T1 and T3
    assert r.split_customers == 1  # T1 is in K1 and K2
    assert r.exact_clusters == 1  # only K3 = T2
    assert (r.largest_cluster, r.singleton_clusters) == (2, 0)
    assert not r.precision_met and not r.recall_met


def test_nothing_merged_has_no_precision(fresh_db: PgUrl, tmp_path: Path):
    truth = write_truth(tmp_path, TRUTH)
    write_crosswalk(fresh_db.url, {k: f"K{i}" for i, k in enumerate(TRUTH)})
    r = score_warehouse(fresh_db.url, truth)
    assert r.precision is None and r.f1 is None and not r.precision_met
    assert r.recall == 0.0
    assert (r.predicted_clusters, r.split_customers, r.missed_pairs) == (6, 2, 4)
    assert "n/a" in report_lines(r)[0] and "NOT met" in report_lines(r)[0]


def test_records_on_one_side_only_are_counted_not_scored(fresh_db: PgUrl, tmp_path: Path):
    # oa:c was deleted in its source (changes.csv), erp:b never arrived; crm:zz is unknown to the truth.
    truth = write_truth(tmp_path, TRUTH, deleted=[("oa", "c")])
    predicted = {k: f"K{v}" for k, v in TRUTH.items() if k not in {("oa", "c"), ("erp", "b")}}
    predicted[("crm", "zz")] = "KT1"
    write_crosswalk(fresh_db.url, predicted)
    r = score_warehouse(fresh_db.url, truth)
    assert r.records_scored == 4
    assert (r.records_not_in_truth, r.truth_records_not_resolved, r.truth_records_deleted) == (1, 2, 1)
    assert (r.true_pairs, r.predicted_pairs) == (1, 1)  # only (crm:d, erp:d) is left on both sides
    assert any("2 ground-truth records not resolved (1 of them deleted" in line for line in report_lines(r))


def test_any_relation_and_a_connection_in_autocommit(fresh_db: PgUrl, tmp_path: Path):
    truth = write_truth(tmp_path, TRUTH)
    write_crosswalk(fresh_db.url, {k: "ONE" for k in TRUTH}, relation="bench.other_matcher")
    with psycopg.connect(fresh_db.url, autocommit=True) as conn:
        r = score_resolution(conn, truth, relation="bench.other_matcher")
        # the ground truth's temp tables are gone again
        assert conn.execute("select to_regclass('pg_temp._truth_links')").fetchone()[0] is None
    assert (r.predicted_pairs, r.true_positive_pairs) == (15, 4)
    assert (r.false_merge_clusters, r.largest_cluster) == (1, 6)


def test_agrees_with_enumerating_every_pair(fresh_db: PgUrl, tmp_path: Path):
    rng = random.Random(7)
    truth = {("crm", f"r{i}"): f"T{rng.randrange(60)}" for i in range(400)}
    # a noisy resolution: mostly right, some records moved to a neighbour's or their own cluster
    predicted = {}
    for key, true_id in truth.items():
        roll = rng.random()
        predicted[key] = true_id if roll < 0.8 else (f"T{rng.randrange(60)}" if roll < 0.9 else f"S{key[1]}")
    write_truth(tmp_path, truth)
    write_crosswalk(fresh_db.url, predicted)
    r = score_warehouse(fresh_db.url, tmp_path)

    same_pred = same_true = both = 0
    for x, y in combinations(truth, 2):
        p, t = predicted[x] == predicted[y], truth[x] == truth[y]
        same_pred += p
        same_true += t
        both += p and t
    assert (r.predicted_pairs, r.true_pairs, r.true_positive_pairs) == (same_pred, same_true, both)
    sizes = Counter(predicted.values())
    assert r.largest_cluster == max(sizes.values())
    assert r.predicted_clusters == len(sizes)
    mixed = {k for k in sizes if len({truth[x] for x in truth if predicted[x] == k}) > 1}
    assert r.false_merge_clusters == len(mixed)


def test_missing_inputs_say_what_to_do(fresh_db: PgUrl, tmp_path: Path):
    with pytest.raises(QualityInputError, match="run the pipeline first"):
        score_warehouse(fresh_db.url, write_truth(tmp_path, TRUTH))
    write_crosswalk(fresh_db.url, {("crm", "a"): "K"})
    with pytest.raises(QualityInputError, match="sandbox generator"):
        score_warehouse(fresh_db.url, tmp_path / "nowhere")


def test_figures_are_plain_ints_for_json(fresh_db: PgUrl, tmp_path: Path):
    truth = write_truth(tmp_path, TRUTH)
    write_crosswalk(fresh_db.url, {k: f"K{v}" for k, v in TRUTH.items()})
    figures = score_warehouse(fresh_db.url, truth).as_dict()
    assert json.loads(json.dumps(figures)) == figures
    assert all(type(v) in (int, float) for v in figures.values())
