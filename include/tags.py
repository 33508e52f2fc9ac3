"""DAG tags from one place, so tests can check every DAG is tagged by layer and system."""

from __future__ import annotations

from enum import StrEnum


class Layer(StrEnum):
    EXTRACT = "layer:extract"
    TRANSFORM = "layer:transform"
    PUSH = "layer:push"
    MONITOR = "layer:monitor"
    PUBLISH = "layer:publish"
    #: the whole pipeline in one DAG (c360_batch_cycle)
    CYCLE = "layer:cycle"


def source_tag(source: str) -> str:
    return f"source:{source}"


def target_tag(target: str) -> str:
    return f"target:{target}"


OWNER = "data-platform"
