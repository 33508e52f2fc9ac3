"""Chinese labels for the dashboards, from the dbt documentation (``meta.label_zh``).

The marts' and snapshots' yml files are the data dictionary the dbt docs show; the dashboards
take their headings from the same place, so a label changed there changes on the next refresh.
The ``bi`` views keep the marts' column names, so a mart's labels are its view's labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from include.config import DBT_PROJECT_DIR

DOC_DIRS = ("models/marts", "snapshots")

#: Business values behind the marts' enums (their accepted_values tests list them).
VALUE_LABELS: dict[str, dict[str, str]] = {
    "customer_type": {"company": "企业", "person": "个人"},
    "lifecycle_stage": {
        "lead": "线索",
        "prospect": "潜在客户",
        "active_customer": "活跃客户",
        "dormant": "沉睡客户",
        "churned": "流失客户",
    },
    "segment": {"vip": "VIP", "regular": "普通客户", "win_back": "挽回客户", "no_orders": "未下单"},
    "alert_type": {"churn_risk": "流失风险", "complaint_spike": "投诉激增", "payment_due": "回款提醒"},
    "severity": {"high": "高", "medium": "中", "low": "低"},
    "reminder_type": {"overdue": "已逾期", "due_soon": "即将到期"},
    "health_status": {"green": "正常", "amber": "关注", "red": "异常"},
}


@dataclass
class ModelLabels:
    label: str
    columns: dict[str, str] = field(default_factory=dict)


def _meta(node: dict) -> dict:
    return (node.get("config") or {}).get("meta") or node.get("meta") or {}


def load_labels(project_dir: Path = DBT_PROJECT_DIR) -> dict[str, ModelLabels]:
    """Model or snapshot name -> its ``label_zh`` and its columns' ``label_zh``."""
    labels: dict[str, ModelLabels] = {}
    for sub in DOC_DIRS:
        for path in sorted((project_dir / sub).glob("*.yml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for node in [*(doc.get("models") or []), *(doc.get("snapshots") or [])]:
                entry = ModelLabels(str(_meta(node).get("label_zh") or node["name"]))
                for column in node.get("columns") or []:
                    label = _meta(column).get("label_zh")
                    if label:
                        entry.columns[column["name"]] = str(label)
                labels[node["name"]] = entry
    return labels
