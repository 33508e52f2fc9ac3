"""``python -m include.access setup | matrix`` on the warehouse of ``C360_WAREHOUSE_URL``."""

from __future__ import annotations

import argparse
import sys

from include.access.matrix import format_matrix, run_matrix
from include.access.setup import setup_access
from include.config import warehouse_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.access", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="create the roles of include/registry/access.yaml and apply their grants")
    sub.add_parser("matrix", help="try every role x action of the test matrix and print the answers")
    args = parser.parse_args(argv)
    url = warehouse_url()
    if args.command == "setup":
        report = setup_access(url)
        print(f"roles created: {', '.join(report.created) or 'none (all existed)'}")
        print(f"login roles (password from their variable): {', '.join(report.login) or 'none'}")
        print(f"NOLOGIN (no password variable set; SET ROLE only): {', '.join(report.nologin) or 'none'}")
        print(f"objects handed over to their schema's owner: {report.handed_over}")
        if report.missing_tables:
            print(f"not there yet (granted by the next dbt run / setup): {', '.join(report.missing_tables)}")
        return 0
    results = run_matrix(url)
    print(format_matrix(results))
    failed = [c for c, actual in results if actual != c.expected]
    print(f"{len(results) - len(failed)}/{len(results)} as expected")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
