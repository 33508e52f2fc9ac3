"""SQL only with parameters or identifier quoting: the lint finds values formatted into SQL, lets
psycopg.sql composition, parameters and reviewed identifiers through, and the code base passes."""

from __future__ import annotations

import pytest

from include.security.sql_lint import audited_files, lint_files, lint_source

FLAGGED = {
    "f-string value": "conn.execute(f\"select * from ops.sync_runs where flow = '{flow}'\")",
    "f-string identifier": 'cur.execute(f"select count(*) from {table}")',
    "str.format": "conn.execute(\"delete from ops.quarantine where source = '{}'\".format(source))",
    "percent formatting": "conn.execute(\"update ops.sync_outbox set status = '%s'\" % status)",
    "concatenation": 'conn.execute("select * from raw_crm.accounts where _record_id = " + record_id)',
    "query built first": "query = f\"insert into ops.erasure_requests values ('{key}', '{why}')\"",
    "a condition fragment": "cond = f\"where t.source_system = '{system}'\"",
    "inside sql.SQL": "sql.SQL(f\"select * from marts.dim_customer where email = '{email}'\")",
    "sqlite": "db.execute(f\"select * from crm_accounts where id = '{account_id}'\")",
    "multi-line": 'conn.execute(\n    f"select *"\n    f" from ops.sync_state where record_key = {key}"\n)',
}

CLEAN = {
    "parameters": 'conn.execute("select * from ops.sync_runs where flow = %s", (flow,))',
    "named parameters": 'conn.execute("select %(a)s, %(b)s", {"a": 1, "b": 2})',
    "identifier quoting": 'conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(s, t)))',
    "literal quoting": 'sql.SQL("where t.source_system = {}").format(sql.Literal(system))',
    "composed addition": "conn.execute(query + sql.SQL(' where ') + sql.SQL(' and ').join(conditions))",
    "a module constant": 'conn.execute(f"select * from {OPS_SCHEMA}.extract_runs where source = %s", (s,))',
    "an error message": 'raise ValueError(f"flow {flow.name}: planner {name} gave no rows; select another")',
    "a log line": 'say(f"set-up done in {elapsed:.0f} s; from {url}")',
}


@pytest.mark.parametrize("code", FLAGGED.values(), ids=FLAGGED.keys())
def test_values_formatted_into_sql_are_found(code: str) -> None:
    findings = lint_source(code, "include/example.py")
    assert findings, code
    assert all(f.path == "include/example.py" and f.line >= 1 for f in findings)


@pytest.mark.parametrize("code", CLEAN.values(), ids=CLEAN.keys())
def test_parameters_quoting_and_constants_pass(code: str) -> None:
    assert lint_source(code, "include/example.py") == []


def test_a_reviewed_identifier_passes_only_in_its_own_file() -> None:
    code = 'conn.execute(f"select count(*) from {table.table} where {table.key} = ?", (key,))'
    assert lint_source(code, "include/sandbox/server.py") == []
    assert {f.expression for f in lint_source(code, "include/push/flows.py")} == {"table.table", "table.key"}


def test_the_code_base_builds_sql_only_with_parameters_and_quoting() -> None:
    files = audited_files()
    assert len(files) > 50
    findings = lint_files(files)
    assert findings == [], "\n".join(map(str, findings))
