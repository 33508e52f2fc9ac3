"""Validated view of ``include/registry/monitoring.yaml``: thresholds, data checks, gates, channels.

Reading it touches only the file, so DAG files may call :func:`load_monitoring` at parse time.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from include.config import REGISTRY_DIR

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(_Strict):
    name: str
    kind: Literal["webhook", "email"]
    conn_id: str
    min_severity: Severity = "warning"
    # webhook
    endpoint: str = ""
    style: Literal["wecom", "dingtalk", "slack"] = "slack"
    # email
    to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _email_has_recipients(self) -> Channel:
        if self.kind == "email" and not self.to:
            raise ValueError(f"email channel {self.name} needs `to` recipients")
        return self


class Threshold(_Strict):
    check: str
    scope: str = "*"
    amber: float
    red: float
    direction: Literal["above", "below"] = "above"

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        worse = self.red >= self.amber if self.direction == "above" else self.red <= self.amber
        if not worse:
            raise ValueError(
                f"threshold {self.check}/{self.scope}: red must be beyond amber ({self.direction})"
            )
        return self


class Volume(_Strict):
    lookback_runs: int = Field(default=10, gt=0)
    min_history: int = Field(default=3, gt=0)


class ModelCheck(_Strict):
    relation: str = Field(pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
    key: list[str] = Field(min_length=1)
    not_null: list[str] = Field(default_factory=list)
    max_null_pct: dict[str, float] = Field(default_factory=dict)


class DataChecks(_Strict):
    row_count_drop_pct: float = Field(default=20, gt=0, lt=100)
    row_count_growth_pct: float = Field(default=200, gt=0)
    models: list[ModelCheck] = Field(default_factory=list)

    def model(self, relation: str) -> ModelCheck:
        for model in self.models:
            if model.relation == relation:
                return model
        raise KeyError(f"no data checks configured for {relation!r} in monitoring.yaml")


class Gate(_Strict):
    """What a consumer outside the target registry (e.g. ``refresh_bi``) waits on. The push flows
    declare theirs in targets.yaml (``reads_sources``, ``triggers``); the sensor checks those marts."""

    sources: list[str] = Field(default_factory=list)
    marts: list[str] = Field(default_factory=list)


class Sensor(_Strict):
    poke_interval_s: int = Field(default=300, gt=0)
    #: Between pokes in an event-mode run (a change message started the pipeline): the change
    #: should reach its targets within a minute, so a momentarily stale upstream is re-checked soon.
    event_poke_interval_s: int = Field(default=10, gt=0)
    timeout_h: float = Field(default=6, gt=0)


class Monitoring(_Strict):
    airflow_base_url: str = "http://127.0.0.1:8080"
    channels: list[Channel] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=list)
    volume: Volume = Volume()
    data_checks: DataChecks = DataChecks()
    gates: dict[str, Gate] = Field(default_factory=dict)
    mart_max_age_hours: float = Field(default=6, gt=0)
    #: refresh_bi after an event-mode build runs only when the last refresh is at least this old.
    bi_event_refresh_min_interval_minutes: float = Field(default=10, ge=0)
    sensor: Sensor = Sensor()

    @model_validator(mode="after")
    def _gates_name_known_things(self) -> Monitoring:
        from include.registry import load_sources

        known = {s.name for s in load_sources()}
        checked = {m.relation for m in self.data_checks.models}
        for consumer, gate in self.gates.items():
            if unknown := set(gate.sources) - known:
                raise ValueError(f"gate {consumer}: unknown sources {sorted(unknown)}; known {sorted(known)}")
            if unknown := set(gate.marts) - checked:
                raise ValueError(
                    f"gate {consumer}: marts {sorted(unknown)} have no data_checks entry, so no "
                    "recorded build time to wait on; add them under data_checks.models"
                )
        return self

    def gate(self, consumer: str) -> Gate:
        if consumer not in self.gates:
            raise KeyError(f"no gate {consumer!r} in monitoring.yaml; known: {sorted(self.gates)}")
        return self.gates[consumer]


def load_monitoring_file(path: Path) -> Monitoring:
    with open(path, encoding="utf-8") as fh:
        return Monitoring.model_validate(yaml.safe_load(fh))


@cache
def load_monitoring() -> Monitoring:
    """The project's monitoring settings (cached: DAG files read them at parse time)."""
    return load_monitoring_file(REGISTRY_DIR / "monitoring.yaml")
