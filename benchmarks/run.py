"""Run the benchmarks and print a table of figures; also write them to ``benchmarks/out/latest.json``.

    C360_WAREHOUSE_URL=postgresql://postgres@127.0.0.1:5432/postgres python -m benchmarks.run
    python -m benchmarks.run --records 50000 --only landing,dag_parse
    python -m benchmarks.run --only marts --customers 20000

Figures are printed, never asserted: they depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import dag_parse, identity, incremental, landing, marts, memory, monitoring, sync_back
from benchmarks.common import Result, Workspace, say, server_from_env

OUT_DIR = Path(__file__).resolve().parent / "out"

#: A benchmark returns one Result, or several (identity: build, memory, quality, incremental, Splink).
BENCHMARKS: dict[str, Callable[[Workspace, argparse.Namespace], Result | list[Result]]] = {
    "landing": lambda ws, args: landing.run(ws, args.records, args.chunk_size),
    "incremental": lambda ws, args: incremental.run(ws, args.records),
    "memory": lambda ws, args: memory.run(ws, args.records),
    "dag_parse": lambda ws, args: dag_parse.run(ws, args.dag_parse_runs),
    "identity": lambda ws, args: identity.run(
        ws, args.records, args.identity_changes, not args.no_splink, not args.no_identity_incremental
    ),
    "monitoring": lambda ws, args: monitoring.run(ws, args.monitoring_days),
    "marts": lambda ws, args: marts.run(ws, args.customers, args.orders_per_customer, args.lookups),
    "push_diff": lambda ws, args: sync_back.diff(ws, args.records),
    "push_throughput": lambda ws, args: sync_back.throughput(ws),
}


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    return names


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "rows/s":
        return f"{value:,.0f} rows/s"
    if unit == "%":
        return f"{value:.2%}"
    if unit == "x":
        return f"{value:.2f} x"
    if unit == "":  # a ratio such as precision or F1
        return f"{value:.4f}"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:.3f} {unit}"


def table(results: list[Result], failures: dict[str, str]) -> str:
    header = ("benchmark", "figure", "baseline", "ratio", "target", "met?")
    rows = [
        (
            r.name,
            _fmt(r.figure, r.unit),
            f"{_fmt(r.baseline, r.unit)} ({r.baseline_label})" if r.baseline is not None else "-",
            _fmt(r.ratio, r.ratio_unit),
            r.target,
            {True: "yes", False: "NO", None: "-"}[r.met],
        )
        for r in results
    ]
    rows += [(name, "FAILED", "-", "-", "-", "-") for name in failures]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--records",
        type=int,
        default=1_000_000,
        help="N for landing, incremental, memory, identity (source customer records) and push_diff (1000000)",
    )
    parser.add_argument(
        "--only", type=_names, default=list(BENCHMARKS), help=f"comma-separated subset of {list(BENCHMARKS)}"
    )
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="landing chunk (default: the runner's LAND_BATCH_ROWS)"
    )
    parser.add_argument("--dag-parse-runs", type=int, default=5)
    parser.add_argument(
        "--identity-changes", type=int, default=10_000, help="new or changed records for identity (10000)"
    )
    parser.add_argument("--no-splink", action="store_true", help="identity without the Splink comparison")
    parser.add_argument("--monitoring-days", type=int, default=90, help="audit history for monitoring (90)")
    parser.add_argument(
        "--customers", type=int, default=1_000_000, help="synthetic customers for marts (1000000)"
    )
    parser.add_argument(
        "--orders-per-customer", type=int, default=5, help="orders per customer for marts (5)"
    )
    parser.add_argument("--lookups", type=int, default=500, help="customer 360 lookups per kind for marts")
    parser.add_argument(
        "--no-identity-incremental", action="store_true", help="identity without the incremental rebuild"
    )
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")

    server = server_from_env()
    ws = Workspace(server)
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    run_info = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "records": args.records,
        "benchmarks": args.only,
        "server": f"{server.host}:{server.port}",
        "postgres": ws.server_version(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1_5_15_before": [round(x, 2) for x in load_before],
    }
    say(
        f"{args.records:,} records; PostgreSQL {run_info['postgres']} at {run_info['server']}; "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} "
        "(other work on this machine skews every figure)"
    )
    results: list[Result] = []
    failures: dict[str, str] = {}
    t0 = time.monotonic()
    try:
        for name in args.only:
            try:
                result = BENCHMARKS[name](ws, args)
                results.extend(result if isinstance(result, list) else [result])
            except Exception as exc:  # one broken benchmark should not hide the others' figures
                traceback.print_exc()
                failures[name] = f"{type(exc).__name__}: {exc}"
    finally:
        ws.close()
    load_after = os.getloadavg()
    run_info["load_avg_1_5_15_after"] = [round(x, 2) for x in load_after]
    run_info["duration_s"] = round(time.monotonic() - t0, 1)

    print()
    print(f"Customer 360 Sync benchmarks: N = {args.records:,}, {run_info['started_at']}")
    print(table(results, failures))
    print()
    for r in results:
        if r.details:
            print(f"{r.name}: {json.dumps(r.details, ensure_ascii=False)}")
    print()
    print(
        f"Machine: {os.cpu_count()} CPUs shared with other work (load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after); client and PostgreSQL on the same host. Figures vary run to run."
    )

    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / "latest.json"
    payload = {
        "run": run_info,
        "results": [r.__dict__ for r in results],
        "failures": failures,
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"Figures written to {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
