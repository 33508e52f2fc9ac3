"""Score an identity resolution against the sandbox's ground truth.

The resolution is any relation with one row per source record: ``source_system``,
``source_record_id`` and the ``customer_key`` it was resolved to (``marts.customer_crosswalk``, or a
table another matcher's clusters were written to, so both are scored by the same code). The ground
truth is the generator's ``links.csv`` (which true customer every source record belongs to) and
``changes.csv`` (records deleted since), in the folder the pipeline never reads.

Figures are pairwise: a pair of records is *predicted* when both got the same customer key and
*true* when both belong to the same real customer. They are counted per cluster (``n * (n - 1) / 2``
per predicted cluster, per true customer, and per cell of their cross-tabulation), never by listing
pairs, so a million records score in seconds, inside PostgreSQL. Only records known to both sides
are scored; the ones on one side only are counted and reported.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from include.config import ground_truth_dir

#: The issue's targets at the generator's default noise.
PRECISION_TARGET = 0.995
RECALL_TARGET = 0.97
CROSSWALK = "marts.customer_crosswalk"


class QualityInputError(Exception):
    """The resolution or the ground truth to score is missing; the message says what to do."""


@dataclass(frozen=True)
class QualityReport:
    """Pairwise and cluster figures of one resolution against the ground truth."""

    records_scored: int
    records_not_in_truth: int  # resolved records the ground truth does not know
    truth_records_not_resolved: int  # ground-truth records missing from the resolution ...
    truth_records_deleted: int  # ... of which deleted in their source since generation
    predicted_clusters: int
    true_customers: int
    predicted_pairs: int
    true_pairs: int
    true_positive_pairs: int
    false_merge_clusters: int  # predicted clusters holding records of more than one real customer
    split_customers: int  # real customers spread over more than one predicted cluster
    exact_clusters: int  # predicted clusters that are exactly one real customer's records
    largest_cluster: int
    largest_true_customer: int
    singleton_clusters: int

    @property
    def false_pairs(self) -> int:
        """Pairs merged that are different real customers (false merges, counted in pairs)."""
        return self.predicted_pairs - self.true_positive_pairs

    @property
    def missed_pairs(self) -> int:
        """Pairs of one real customer left in different clusters (missed links)."""
        return self.true_pairs - self.true_positive_pairs

    @property
    def precision(self) -> float | None:
        """None when nothing was merged: precision of no pairs is undefined."""
        return self.true_positive_pairs / self.predicted_pairs if self.predicted_pairs else None

    @property
    def recall(self) -> float | None:
        """None when the truth has no pairs (every customer has one record)."""
        return self.true_positive_pairs / self.true_pairs if self.true_pairs else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def precision_met(self) -> bool:
        return self.precision is not None and self.precision >= PRECISION_TARGET

    @property
    def recall_met(self) -> bool:
        return self.recall is not None and self.recall >= RECALL_TARGET

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            precision=self.precision,
            recall=self.recall,
            f1=self.f1,
            false_pairs=self.false_pairs,
            missed_pairs=self.missed_pairs,
        )
        return out


def _load_truth(conn: psycopg.Connection, truth_dir: Path) -> None:
    """``links.csv`` and the deletes of ``changes.csv`` into temp tables, with COPY.

    Called inside a transaction that is rolled back, which drops the tables again.
    """
    links = truth_dir / "links.csv"
    if not links.exists():
        raise QualityInputError(
            f"No ground truth at {links}: it is written by the sandbox generator "
            "(`python -m include.sandbox generate ...`, or `make demo`), in the data folder C360_DATA_DIR."
        )
    conn.execute(
        "create temp table _truth_links (source_system text, entity text, "
        "source_record_id text, true_customer_id text)"
    )
    conn.execute("create temp table _truth_deleted (source_system text, source_record_id text)")
    with conn.cursor() as cur:
        copy_links = "copy _truth_links from stdin (format csv, header true)"
        with open(links, "rb") as fh, cur.copy(copy_links) as cp:
            while chunk := fh.read(1 << 20):
                cp.write(chunk)
        changes = truth_dir / "changes.csv"
        if changes.exists():
            with open(changes, newline="", encoding="utf-8") as fh:
                deleted = [
                    (r["source_system"], r["source_record_id"])
                    for r in csv.DictReader(fh)
                    if r.get("kind") == "delete"
                ]
            with cur.copy("copy _truth_deleted from stdin") as cp:
                for row in deleted:
                    cp.write_row(row)
        cur.execute("analyze _truth_links")
        cur.execute("analyze _truth_deleted")
        cur.execute(
            "create temp table _deleted as select distinct source_system, source_record_id "
            "from _truth_deleted inner join _truth_links using (source_system, source_record_id)"
        )
        cur.execute("analyze _deleted")


# The resolution joined to the truth, one row per (predicted cluster, true customer) with its record
# count: every pairwise and cluster figure follows from these cells. A temp table with statistics
# (rather than CTEs) keeps the planner's estimates right at any size.
_CELLS_SQL = """
create temp table _cells as
select r.customer_key as predicted, t.true_customer_id as truth, count(*)::bigint as n
from {relation} as r
inner join _truth_links as t using (source_system, source_record_id)
group by r.customer_key, t.true_customer_id
"""

_FIGURES_SQL = """
with sized as (
    select
        n,
        sum(n) over (partition by predicted) as predicted_n,
        count(*) over (partition by predicted) as predicted_customers,
        sum(n) over (partition by truth) as truth_n,
        count(*) over (partition by truth) as truth_clusters,
        row_number() over (partition by predicted) = 1 as first_of_predicted,
        row_number() over (partition by truth) = 1 as first_of_truth
    from _cells
)
select
    coalesce(sum(n), 0) as records_scored,
    count(*) filter (where first_of_predicted) as predicted_clusters,
    count(*) filter (where first_of_truth) as true_customers,
    coalesce(sum(predicted_n * (predicted_n - 1) / 2) filter (where first_of_predicted), 0)
        as predicted_pairs,
    coalesce(sum(truth_n * (truth_n - 1) / 2) filter (where first_of_truth), 0) as true_pairs,
    coalesce(sum(n * (n - 1) / 2), 0) as true_positive_pairs,
    count(*) filter (where first_of_predicted and predicted_customers > 1) as false_merge_clusters,
    count(*) filter (where first_of_truth and truth_clusters > 1) as split_customers,
    count(*) filter (where n = predicted_n and n = truth_n) as exact_clusters,
    coalesce(max(predicted_n), 0) as largest_cluster,
    coalesce(max(truth_n), 0) as largest_true_customer,
    count(*) filter (where first_of_predicted and predicted_n = 1) as singleton_clusters
from sized
"""

_COVERAGE_SQL = """
select
    (select count(*) from {relation}) as resolved_records,
    (select count(*) from _truth_links) as truth_records,
    (select count(*) from _deleted) as deleted_in_truth,
    (select count(*) from _deleted as d inner join {relation} as r using (source_system, source_record_id))
        as deleted_but_resolved
"""


def score_resolution(
    conn: psycopg.Connection, truth_dir: Path | None = None, relation: str = CROSSWALK
) -> QualityReport:
    """Score ``relation`` (``source_system``, ``source_record_id``, ``customer_key``) on ``conn``.

    Works in a transaction of its own (a savepoint inside the caller's), always rolled back: the
    ground truth's temp tables never outlive the call and nothing is written.
    """
    truth_dir = truth_dir or ground_truth_dir()
    exists = conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]
    if not exists:
        raise QualityInputError(
            f"{relation} does not exist in this warehouse: run the pipeline first (`make demo`, or dbt "
            "build) so there is a resolution to score."
        )
    schema, _, table = relation.rpartition(".")
    ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    with conn.transaction(force_rollback=True), conn.cursor(row_factory=dict_row) as cur:
        _load_truth(conn, truth_dir)
        cur.execute(sql.SQL(_CELLS_SQL).format(relation=ident))
        cur.execute("analyze _cells")
        figures = cur.execute(_FIGURES_SQL).fetchone()
        coverage = cur.execute(sql.SQL(_COVERAGE_SQL).format(relation=ident)).fetchone()
    scored = int(figures["records_scored"])
    return QualityReport(
        **{name: int(value) for name, value in figures.items()},
        records_not_in_truth=int(coverage["resolved_records"]) - scored,
        truth_records_not_resolved=int(coverage["truth_records"]) - scored,
        truth_records_deleted=int(coverage["deleted_in_truth"] - coverage["deleted_but_resolved"]),
    )


def score_warehouse(
    warehouse_url: str, truth_dir: Path | None = None, relation: str = CROSSWALK
) -> QualityReport:
    with psycopg.connect(warehouse_url) as conn:
        return score_resolution(conn, truth_dir, relation)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def report_lines(report: QualityReport) -> list[str]:
    """The figures as a person reads them, with the issue's targets marked met or not met."""

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    r = report
    lines = [
        f"pairwise precision:  {_ratio(r.precision)}   "
        f"(target >= {PRECISION_TARGET}: {met(r.precision_met)})",
        f"pairwise recall:     {_ratio(r.recall)}   (target >= {RECALL_TARGET}: {met(r.recall_met)})",
        f"pairwise F1:         {_ratio(r.f1)}",
        f"false merges:        {r.false_merge_clusters:,} clusters hold more than one real customer "
        f"({r.false_pairs:,} false pairs)",
        f"missed links:        {r.split_customers:,} real customers split over several clusters "
        f"({r.missed_pairs:,} missed pairs)",
        f"clusters:            {r.predicted_clusters:,} predicted for {r.true_customers:,} real customers "
        f"({r.exact_clusters:,} exactly right, {r.singleton_clusters:,} single-record)",
        f"largest cluster:     {r.largest_cluster:,} records (largest real customer: "
        f"{r.largest_true_customer:,})",
        f"records scored:      {r.records_scored:,}",
    ]
    if r.records_not_in_truth or r.truth_records_not_resolved:
        lines.append(
            f"not scored:          {r.records_not_in_truth:,} resolved records unknown to the ground truth; "
            f"{r.truth_records_not_resolved:,} ground-truth records not resolved "
            f"({r.truth_records_deleted:,} of them deleted in their source)"
        )
    return lines
