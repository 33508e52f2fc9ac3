"""Benchmarks: plain scripts that print figures (never assertions on time).

Run ``python -m benchmarks.run [--records N] [--only NAME]`` from the repository root with
``C360_WAREHOUSE_URL`` pointing at a PostgreSQL server; see ``benchmarks/README.md``.
"""
