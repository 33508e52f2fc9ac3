"""The data-dictionary check: every model, snapshot and source documented for a business reader.

Reads dbt's ``manifest.json`` (what the yml says) and ``catalog.json`` (what the warehouse holds, from
``dbt docs generate``) and lists what is missing:

- a model or snapshot without a description, a description that does not state the grain
  ("One row per ..."), or without ``meta.label_zh``;
- a column that exists in the warehouse but is not documented, or documented without
  ``meta.label_zh`` or with a ``meta.pii`` outside none / contact / identity;
- a public mart (``marts`` schema) without an enforced contract or that no exposure depends on.

    python -m include.data_dictionary [dbt_project/target]     # exit 1 and a list when incomplete
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from include.config import DBT_PROJECT_DIR

#: none: not about a person; contact: reaches a person (phone, email, address, free text that may hold
#: them); identity: identifies a natural or legal person (names, ID numbers, USCC, raw payloads).
PII_CLASSES = ("none", "contact", "identity")
GRAIN = re.compile(r"\bone row per\b", re.IGNORECASE)


def _column_problems(where: str, documented: dict[str, Any], columns: list[str]) -> list[str]:
    problems = []
    for column in columns:
        doc = documented.get(column)
        if doc is None or not doc.get("description", "").strip():
            problems.append(f"{where}.{column}: no description")
            continue
        meta = doc.get("meta") or doc.get("config", {}).get("meta") or {}
        if not str(meta.get("label_zh", "")).strip():
            problems.append(f"{where}.{column}: no meta.label_zh")
        if meta.get("pii") not in PII_CLASSES:
            problems.append(f"{where}.{column}: meta.pii is {meta.get('pii')!r}, not one of {PII_CLASSES}")
    return problems


def dictionary_problems(manifest: dict[str, Any], catalog: dict[str, Any]) -> list[str]:
    """Everything a business reader of the docs site would find missing; empty when complete."""
    problems: list[str] = []
    project = manifest["metadata"].get("project_name")
    exposed = {
        dep for exposure in manifest.get("exposures", {}).values() for dep in exposure["depends_on"]["nodes"]
    }
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] not in ("model", "snapshot") or node.get("package_name") != project:
            continue
        description = node.get("description", "").strip()
        if not description:
            problems.append(f"{unique_id}: no description")
        elif not GRAIN.search(description):
            problems.append(f"{unique_id}: the description does not state the grain ('One row per ...')")
        if not str(node.get("meta", {}).get("label_zh", "")).strip():
            problems.append(f"{unique_id}: no meta.label_zh")
        in_warehouse = catalog["nodes"].get(unique_id)
        if in_warehouse is None:
            problems.append(f"{unique_id}: not in the catalog (not built?)")
            columns = list(node["columns"])
        else:
            columns = list(in_warehouse["columns"])
            extra = set(node["columns"]) - {c.lower() for c in columns}
            problems += [f"{unique_id}.{c}: documented but not in the warehouse" for c in sorted(extra)]
        problems += _column_problems(unique_id, node["columns"], columns)
        if node["resource_type"] == "model" and node.get("schema") == "marts":
            if not node.get("config", {}).get("contract", {}).get("enforced"):
                problems.append(f"{unique_id}: public mart without an enforced contract")
            if unique_id not in exposed:
                problems.append(f"{unique_id}: public mart that no exposure (dashboard or sync) depends on")
    for unique_id, source in manifest["sources"].items():
        if source.get("package_name") != project:
            continue
        if not source.get("description", "").strip():
            problems.append(f"{unique_id}: no description")
        in_warehouse = catalog.get("sources", {}).get(unique_id)
        columns = list(in_warehouse["columns"]) if in_warehouse else list(source["columns"])
        problems += _column_problems(unique_id, source["columns"], columns)
    return problems


def check_target(target: Path) -> list[str]:
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    catalog_path = target / "catalog.json"
    if not catalog_path.exists():
        raise SystemExit(f"{catalog_path} is missing: run `dbt docs generate` first (make docs does)")
    catalog = json.loads(catalog_path.read_text(encoding="utf-8"))
    return dictionary_problems(manifest, catalog)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DBT_PROJECT_DIR / "target"
    problems = check_target(target)
    for problem in problems:
        print(problem)
    print(f"data dictionary: {len(problems)} problem(s) in {target}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
