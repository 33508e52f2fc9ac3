"""The source registry: validated, typed view of ``registry/sources.yaml``.

Reading it is cheap and touches nothing but the file, so DAG files may call
:func:`load_sources` at parse time.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from include.config import REGISTRY_DIR
from include.identity.pii import ProtectionKind

SyncMode = Literal["full", "incremental"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Freshness(_Strict):
    warn_after_hours: int = Field(gt=0)
    error_after_hours: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Freshness:
        if self.error_after_hours < self.warn_after_hours:
            raise ValueError("error_after_hours must be >= warn_after_hours")
        return self


class Pagination(_Strict):
    style: Literal["cursor", "page", "offset"]
    page_size: int = Field(gt=0, le=10_000)


#: Prefix put before every source's change-event channel (e.g. ``dev-ana.``), so stacks that share
#: one Redis (whose pub/sub channels are global across its databases) do not hear each other.
EVENTS_CHANNEL_PREFIX_ENV = "C360_EVENTS_CHANNEL_PREFIX"


class Events(_Strict):
    channel: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")

    @property
    def redis_channel(self) -> str:
        """The channel publishers and the extract DAG's AssetWatcher use: ``channel`` behind
        ``C360_EVENTS_CHANNEL_PREFIX`` (empty by default)."""
        prefix = os.environ.get(EVENTS_CHANNEL_PREFIX_ENV, "")
        if prefix and not re.fullmatch(r"[A-Za-z0-9_.:-]+", prefix):
            raise ValueError(f"{EVENTS_CHANNEL_PREFIX_ENV}={prefix!r}: use letters, digits and _ . : - only")
        return f"{prefix}{self.channel}"


class Entity(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    key: str
    updated_at: str | None = None
    sync_mode: SyncMode = "full"
    customer_entity: bool = False
    fields: list[str]
    # http sources
    path: str | None = None
    # database sources
    table: str | None = None
    # file sources
    file_glob: str | None = None
    column_map: dict[str, list[str]] | None = None
    #: A record with none of these fields filled identifies nobody: it is quarantined.
    required_any: list[str] = Field(default_factory=list)
    #: Personal identifiers hashed before landing (include.identity.pii): field -> kind.
    protected: dict[str, ProtectionKind] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_is_a_field(self) -> Entity:
        if self.key not in self.fields:
            raise ValueError(f"entity {self.name}: key {self.key!r} is not in its fields")
        if not set(self.required_any) <= set(self.fields):
            raise ValueError(f"entity {self.name}: required_any names fields it does not have")
        if not set(self.protected) <= set(self.fields):
            raise ValueError(f"entity {self.name}: protected names fields it does not have")
        if self.sync_mode == "incremental" and not self.updated_at:
            raise ValueError(f"entity {self.name}: incremental sync needs an updated_at field")
        return self


class Source(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    kind: Literal["http", "database", "files"]
    description: str
    owner: str
    schedule: str = Field(pattern=r"^\S+ \S+ \S+ \S+ \S+$", description="cron expression")
    freshness: Freshness
    entities: list[Entity] = Field(min_length=1)
    conn_id: str | None = None
    pool: str | None = None
    pagination: Pagination | None = None
    events: Events | None = None
    schema_: str | None = Field(default=None, alias="schema")
    landing_dir: str | None = None
    #: Time zone of the source's timestamps that carry no offset (people's spreadsheets, old ERPs).
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _kind_has_its_settings(self) -> Source:
        needs = {
            "http": ("conn_id", "pagination"),
            "database": ("conn_id", "schema_"),
            "files": ("landing_dir",),
        }[self.kind]
        missing = [n.rstrip("_") for n in needs if getattr(self, n) is None]
        if missing:
            raise ValueError(f"source {self.name} ({self.kind}) needs: {', '.join(missing)}")
        per_entity = {"http": "path", "database": "table", "files": "column_map"}[self.kind]
        for entity in self.entities:
            if getattr(entity, per_entity) is None:
                raise ValueError(f"source {self.name}, entity {entity.name}: missing {per_entity}")
        return self

    @property
    def raw_schema(self) -> str:
        return f"raw_{self.name}"

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"source {self.name} has no entity {name!r}")


class Registry(_Strict):
    sources: list[Source]

    @model_validator(mode="after")
    def _unique_names(self) -> Registry:
        names = [s.name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate source names in registry: {names}")
        return self


def load_registry(path: Path | None = None) -> Registry:
    path = path or REGISTRY_DIR / "sources.yaml"
    with open(path, encoding="utf-8") as fh:
        return Registry.model_validate(yaml.safe_load(fh))


@cache
def load_sources() -> tuple[Source, ...]:
    """All sources of the default registry (cached: DAG files call this at parse time)."""
    return tuple(load_registry().sources)


def get_source(name: str) -> Source:
    for source in load_sources():
        if source.name == name:
            return source
    raise KeyError(f"no source {name!r} in the registry; known: {[s.name for s in load_sources()]}")
