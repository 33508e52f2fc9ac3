"""Source-system sandbox: stand-ins for CRM, ERP, OA, call center and marketing, plus their data.

Entry points: :func:`include.sandbox.generator.generate`, :func:`include.sandbox.tick.tick`,
:func:`include.sandbox.server.create_app` and the CLI ``python -m include.sandbox``.
"""
