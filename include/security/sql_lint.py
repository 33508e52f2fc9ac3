"""Find SQL assembled from Python values by string formatting: the check behind "SQL only with
parameters or identifier quoting".

A statement is SQL when it is passed to ``execute`` / ``executemany`` / ``copy`` / ``sql.SQL`` /
``mogrify``, or when its text starts with a SQL verb (``select``, ``insert``, ``create``, ...). Such
a statement may not be an f-string, a ``str.format`` call or a ``%`` expression over values, unless
every piece put into it is known to be an identifier or SQL text we wrote:

- a module constant (``OPS_SCHEMA``, ``SCHEMA``: ALL-CAPS names set in code);
- an expression in :data:`REVIEWED` for its file: identifiers the source registry validates, the
  sandbox's own fixed table and column names, ``?`` placeholder lists.

Everything else is a finding. The fix is a parameter (``%s`` / ``?``) for a value and
``psycopg.sql.Identifier`` / ``sql.Literal`` for names and constants, not a new entry here.

    python -m include.security.sql_lint          # exit 1 and one line per finding
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from include.config import PROJECT_ROOT

#: Folders whose Python builds SQL (tests build their own fixtures and are not audited).
AUDITED = ("include", "plugins", "dags", "benchmarks")
SQL_CALLS = {"execute", "executemany", "executescript", "copy", "SQL", "mogrify"}
_SQL_START = re.compile(
    r"^\s*(select|insert|update|delete|create|drop|alter|truncate|copy|with|analyze|vacuum|grant|revoke"
    # fragments of a statement: a condition, a join, a clause
    r"|not exists|exists|where|and|or|join|left join|from|order by|group by|set)\s"
    r"|\(\s*select\s",
    re.IGNORECASE,
)

#: Reviewed interpolations, per file: each one is an identifier or SQL we wrote, never a value.
REVIEWED: dict[str, frozenset[str]] = {
    # The sandbox's SQLite: table and column names come from its fixed schema (stores.app_tables,
    # writes.write_specs, both built from the validated source registry); values are ? parameters.
    "include/sandbox/server.py": frozenset(
        {
            "cols",  # ", ".join(table.fields)
            "table.table",
            "table.updated_at",
            "table.key",
            "where",  # built from table.updated_at with ? parameters
            "' and '.join(where)",
            "t",  # the health route: the names of stores.app_tables()
            "', '.join(table.fields)",
            "marks",  # "?, ?, ..."
            "sets",  # "field = ?" for writable fields validated against CRM_WRITABLE
        }
    ),
    "include/sandbox/writes.py": frozenset(
        {
            "', '.join(cols)",
            "spec.table",
            "spec.key",
            "spec.ext_table",
            "marks",
            "', '.join('?' * len(cols))",
            "', '.join((f'{k} = ?' for k in sets))",
            "', '.join(names)",
            "', ?' * len(names)",
            "', '.join((f'{n} = excluded.{n}' for n in ['updated_at', *names]))",
            "where",  # "where idem_key like ?"
        }
    ),
    "include/sandbox/stores.py": frozenset(
        {"t.table", "cols", "t.updated_at", "t.key", "table", "', '.join(t.fields)", "marks"}
    ),
    # changes.py: ``column`` is a value of its AGENT_FIELDS mapping, the field checked against it first
    "include/sandbox/changes.py": frozenset(
        {"table.key", "table.table", "marks", "column", "column or 'null'"}
    ),
    "include/sandbox/tick.py": frozenset({"marks"}),
    "benchmarks/common.py": frozenset({"', '.join(table.fields)", "table.table", "table.key"}),
    "benchmarks/identity.py": frozenset({"', '.join(table.fields)", "table.table", "columns"}),
    # The access matrix's probes: relation names written as constants in its CHECKS table.
    "include/access/matrix.py": frozenset({"table"}),
    # Function signatures as regprocedure text: PostgreSQL's own quoting, read from the catalog.
    "include/access/setup.py": frozenset({"signature", "_checked_signature(conn, function)"}),
    # Splink's own generated table names (DuckDB), and file paths quoted as DuckDB string literals.
    "benchmarks/splink_matcher.py": frozenset(
        {
            "predictions.physical_name",
            "clusters.physical_name",
            "_sql_string(records_csv)",
            "_sql_string(clusters_csv)",
        }
    ),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    expression: str
    statement: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: SQL built from {self.expression!r} in {self.statement[:90]!r}: pass "
            "values as parameters and names through psycopg.sql.Identifier"
        )


def _is_constant_name(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return bool(re.fullmatch(r"_?[A-Z][A-Z0-9_]*", name))


def _text(node: ast.AST) -> str:
    """The literal text of a string expression (f-string parts joined), for the SQL-verb test."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _pieces(node: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """(interpolated expression, statement text) for each value formatted into a string expression."""
    if isinstance(node, ast.JoinedStr):
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                yield value.value, _text(node)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        # string concatenation ("select * from " + table); an addition of psycopg.sql objects is fine
        concatenation = any(_is_str(side) for side in (node.left, node.right))
        for side in (node.left, node.right):
            if isinstance(side, ast.JoinedStr | ast.BinOp):
                yield from _pieces(side)
            elif concatenation and not _is_str(side):
                yield side, _text(node)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _text(node.left):
        args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
        for arg in args:
            yield arg, _text(node.left)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and _text(node.func.value)
    ):
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            yield arg, _text(node.func.value)


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.hits: list[tuple[ast.AST, str]] = []
        self._seen: set[int] = set()

    def _add(self, node: ast.AST) -> None:
        for expr, text in _pieces(node):
            if id(expr) not in self._seen:
                self._seen.add(id(expr))
                self.hits.append((expr, text))

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in SQL_CALLS and node.args:
            self._add(node.args[0])
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if _SQL_START.match(_text(node)):
            self._add(node)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Mod | ast.Add) and _SQL_START.match(_text(node)):
            self._add(node)
        self.generic_visit(node)


def lint_source(source: str, path: str = "<source>") -> list[Finding]:
    """Findings in one Python module's source; ``path`` (relative, posix) selects its reviewed list."""
    tree = ast.parse(source)
    visitor = _Visitor()
    visitor.visit(tree)
    reviewed = REVIEWED.get(path, frozenset())
    findings = []
    for expr, text in visitor.hits:
        if isinstance(expr, ast.Constant) or _is_constant_name(expr):
            continue
        shown = ast.unparse(expr)
        if shown in reviewed:
            continue
        findings.append(Finding(path, expr.lineno, shown, " ".join(text.split())))
    return findings


def audited_files(root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted(p for folder in AUDITED for p in (root / folder).rglob("*.py") if "out" not in p.parts)


def lint_files(paths: Iterable[Path], root: Path = PROJECT_ROOT) -> list[Finding]:
    findings: list[Finding] = []
    for path in paths:
        findings += lint_source(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())
    return findings


def main() -> int:
    findings = lint_files(audited_files())
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
