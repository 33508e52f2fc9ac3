"""Splink 4 on DuckDB over the warehouse's standardised customer records: the off-the-shelf baseline.

Runs in the benchmark's own environment (``.venv-bench``, ``benchmarks/requirements-splink.txt``),
never in the product's: ``python benchmarks/splink_matcher.py RECORDS_CSV CLUSTERS_CSV``. Reads the
CSV ``benchmarks/identity.py`` exports (``unique_id`` = ``source_system:source_record_id`` and the
standardised fields), writes ``unique_id,cluster_id`` and prints one JSON line of timings.

The model is what a careful first Splink user would build for this data:

- blocking (candidate pairs): same USCC, same ID number (hash), same mobile, same landline, same
  email, same company-name key;
- comparisons: the name (exact / Jaro-Winkler >= 0.92 / >= 0.8), USCC, ID number, mobile,
  landline, email (exact / same user part), city, customer type;
- training: the prior from the deterministic rules, u from 1M random pairs, m by EM in three rounds
  (blocked on mobile, on email, on the company-name key, so every comparison gets trained);
- prediction at match probability >= 0.5, clustering into connected components at 0.95.
"""

from __future__ import annotations

import json
import sys
import time

import duckdb
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

MATCH_PROBABILITY = 0.95
PREDICT_FLOOR = 0.5

BLOCKING = [
    block_on("uscc"),
    block_on("id_card"),
    block_on("mobile_e164"),
    block_on("phone_e164"),
    block_on("email"),
    block_on("name_match_key"),
]


def settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=BLOCKING,
        comparisons=[
            cl.JaroWinklerAtThresholds("customer_name", [0.92, 0.8]),
            cl.ExactMatch("uscc"),
            cl.ExactMatch("id_card"),
            cl.ExactMatch("mobile_e164"),
            cl.ExactMatch("phone_e164"),
            cl.EmailComparison("email"),
            cl.ExactMatch("city"),
            cl.ExactMatch("customer_type"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def _sql_string(value: str) -> str:
    """A DuckDB string literal (file paths in ``read_csv`` and ``copy ... to``, where DuckDB takes no
    parameter)."""
    return "'" + str(value).replace("'", "''") + "'"


def main(records_csv: str, clusters_csv: str) -> None:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    con = duckdb.connect()
    con.execute("set threads to 2")  # the benchmark machine's cores, as PostgreSQL gets
    con.execute(
        "create table records as select * from "
        f"read_csv({_sql_string(records_csv)}, header=true, all_varchar=true)"
    )
    records = con.table("records")
    linker = Linker(records, settings(), db_api=DuckDBAPI(connection=con))
    timings["load_s"] = time.perf_counter() - t

    t = time.perf_counter()
    deterministic = [block_on("uscc"), block_on("id_card"), block_on("email"), block_on("mobile_e164")]
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("mobile_e164"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_match_key"))
    timings["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=PREDICT_FLOOR)
    pairs = con.execute(f"select count(*) from {predictions.physical_name}").fetchall()[0][0]
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=MATCH_PROBABILITY
    )
    con.execute(
        f"copy (select unique_id, cluster_id from {clusters.physical_name}) to {_sql_string(clusters_csv)} "
        "(header)"
    )
    distinct = f"select count(distinct cluster_id) from {clusters.physical_name}"
    n_clusters = con.execute(distinct).fetchall()[0][0]
    timings["cluster_s"] = time.perf_counter() - t

    print(
        json.dumps(
            {
                **{k: round(v, 2) for k, v in timings.items()},
                "predicted_pairs_over_floor": pairs,
                "clusters": n_clusters,
                "threshold": MATCH_PROBABILITY,
                "peak_rss_mb": round(_own_peak_rss_kb() / 1024, 1),
            }
        )
    )


def _own_peak_rss_kb() -> int:
    """VmHWM: this process' peak since exec. Not ru_maxrss, which counts the peak of the benchmark
    process that spawned it (benchmarks/common.py, vm_hwm_kb; this script runs in .venv-bench
    without the project's packages)."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
