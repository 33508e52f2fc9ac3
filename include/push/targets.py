"""The target registry: validated, typed view of ``registry/targets.yaml``.

Like the source registry, reading it touches nothing but the file, so the push DAG file may call
:func:`load_targets` at parse time.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from include.config import REGISTRY_DIR
from include.registry import load_sources

Mode = Literal["update_only", "create_only", "upsert"]
#: What each flow mode asks of the target's bulk-write API.
API_MODE = {"update_only": "update", "create_only": "create", "upsert": "upsert"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    attempts: int = Field(5, ge=1, le=20, description="tries per batch before the target counts as down")
    max_wait_seconds: float = Field(
        30.0, gt=0, le=600, description="cap of one backoff wait (and Retry-After)"
    )


class Target(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    system: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["http", "database"]
    conn_id: str
    path: str | None = None
    pool: str
    timeout_seconds: float = Field(30.0, gt=0)
    retry: Retry = Retry()

    @model_validator(mode="after")
    def _http_has_path(self) -> Target:
        if self.kind == "http" and not self.path:
            raise ValueError(f"target {self.name}: an http target needs a path")
        return self


class Flow(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    description: str
    owner: str
    planner: str
    targets: list[str] = Field(min_length=1)
    mode: Mode
    target_modes: dict[str, Mode] = Field(default_factory=dict)
    nulls_overwrite: bool = False
    triggers: list[str] = Field(min_length=1, description="mart Asset names that start the flow")
    #: Sources whose current values the plan reads: the flow waits until they are fresh (a stale
    #: source holds only the flows that read it).
    reads_sources: list[str] = Field(default_factory=list)
    #: Sources (with ``events`` in sources.yaml) whose change events run this flow in event mode:
    #: those whose change can alter what the plan sends. Empty: the flow runs in batch runs only.
    event_sources: list[str] = Field(default_factory=list)
    batch_size: int = Field(500, gt=0, le=5000)
    max_requests_per_second: float = Field(20.0, gt=0)
    #: More open rejects than this fails the flow's check task (Airflow alerts on the failure).
    max_open_rejects: int = Field(100, ge=0)
    #: Tries of one rejected record (once per run) before it stays in rejects for a person to fix.
    max_reject_attempts: int = Field(10, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)

    def mode_for(self, target: str) -> Mode:
        return self.target_modes.get(target, self.mode)


class TargetRegistry(_Strict):
    targets: list[Target]
    flows: list[Flow]

    @model_validator(mode="after")
    def _consistent(self) -> TargetRegistry:
        from include.push.flows import PLANNERS

        names = [t.name for t in self.targets]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate target names: {names}")
        flow_names = [f.name for f in self.flows]
        if len(flow_names) != len(set(flow_names)):
            raise ValueError(f"duplicate flow names: {flow_names}")
        for flow in self.flows:
            unknown = (set(flow.targets) | set(flow.target_modes)) - set(names)
            if unknown:
                raise ValueError(f"flow {flow.name}: unknown target(s) {sorted(unknown)}; known: {names}")
            if flow.planner not in PLANNERS:
                raise ValueError(f"flow {flow.name}: no planner {flow.planner!r}; known: {sorted(PLANNERS)}")
            sources = {s.name for s in load_sources()}
            if set(flow.reads_sources) - sources:
                raise ValueError(
                    f"flow {flow.name}: reads_sources names unknown source(s) "
                    f"{sorted(set(flow.reads_sources) - sources)}; known: {sorted(sources)}"
                )
            with_events = {s.name for s in load_sources() if s.events}
            if set(flow.event_sources) - with_events:
                raise ValueError(
                    f"flow {flow.name}: event_sources names source(s) without change events "
                    f"{sorted(set(flow.event_sources) - with_events)}; "
                    f"sources with events: {sorted(with_events)}"
                )
        return self

    def event_flows(self, sources: Iterable[str]) -> list[Flow]:
        """The flows an event-mode run for a change in ``sources`` runs (``event_sources``)."""
        changed = set(sources)
        return [f for f in self.flows if changed & set(f.event_sources)]

    def event_marts(self, sources: Iterable[str]) -> list[str]:
        """The mart Assets those flows are triggered by: what an event-mode dbt run must rebuild."""
        return sorted({m for f in self.event_flows(sources) for m in f.triggers})

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(f"no target {name!r} in the target registry")

    def flow(self, name: str) -> Flow:
        for flow in self.flows:
            if flow.name == name:
                return flow
        raise KeyError(f"no flow {name!r} in the target registry; known: {[f.name for f in self.flows]}")


def load_target_registry(path: Path | None = None) -> TargetRegistry:
    path = path or REGISTRY_DIR / "targets.yaml"
    with open(path, encoding="utf-8") as fh:
        return TargetRegistry.model_validate(yaml.safe_load(fh))


@cache
def load_targets() -> TargetRegistry:
    """The default target registry (cached: the push DAG file calls this at parse time)."""
    return load_target_registry()
