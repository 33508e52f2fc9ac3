"""Source-system sandbox: stand-ins for CRM, ERP, OA, call center and marketing, plus their data.

Entry points: :func:`include.sandbox.generator.generate`, :func:`include.sandbox.tick.tick`,
:func:`include.sandbox.server.create_app` and the CLI ``python -m include.sandbox``.
Failure and change modes for testing extraction: :mod:`~include.sandbox.faults` (500/429/slow answers),
:func:`include.sandbox.changes.delete_records` (hard deletes), :mod:`~include.sandbox.drift` (schema drift),
:mod:`~include.sandbox.events` (change events on Redis),
:mod:`~include.sandbox.bad_files` (quarantine corpus).
"""
