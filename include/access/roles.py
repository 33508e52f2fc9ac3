"""The role registry (include/registry/access.yaml), validated."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from include.config import REGISTRY_DIR
from include.registry import load_sources

ACCESS_FILE = REGISTRY_DIR / "access.yaml"
ROLE_PREFIX_ENV = "C360_ROLE_PREFIX"
RAW_SCHEMAS = "raw_*"

TablePrivilege = Literal["select", "insert", "update", "delete"]
SchemaPrivilege = Literal["usage", "create"]
DatabasePrivilege = Literal["connect", "create", "temporary"]


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schemas: list[str] = Field(min_length=1)
    schema_privileges: list[SchemaPrivilege] = ["usage"]
    tables: Literal["all"] | list[str] = "all"
    privileges: list[TablePrivilege] = Field(default_factory=list)

    @field_validator("schemas")
    @classmethod
    def _expand_raw(cls, schemas: list[str]) -> list[str]:
        out: list[str] = []
        for schema in schemas:
            out += [s.raw_schema for s in load_sources()] if schema == RAW_SCHEMAS else [schema]
        return out


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str
    password_env: str
    database: list[DatabasePrivilege] = ["connect"]
    member_of: list[str] = Field(default_factory=list)
    owns: list[str] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)

    @field_validator("owns")
    @classmethod
    def _expand_owned_raw(cls, owns: list[str]) -> list[str]:
        out: list[str] = []
        for item in owns:
            out += [s.raw_schema for s in load_sources()] if item == RAW_SCHEMAS else [item]
        return out

    @property
    def owned_schemas(self) -> list[str]:
        return [item for item in self.owns if "." not in item]

    @property
    def owned_tables(self) -> list[tuple[str, str]]:
        return [tuple(item.split(".", 1)) for item in self.owns if "." in item]

    functions: list[str] = Field(default_factory=list)

    def db_name(self, prefix: str | None = None) -> str:
        """The role's name in the database (with ``C360_ROLE_PREFIX``)."""
        return (role_prefix() if prefix is None else prefix) + self.name

    def password(self) -> str | None:
        return os.environ.get(self.password_env) or None


class AccessRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: dict[str, Role]

    @model_validator(mode="after")
    def _check(self) -> AccessRegistry:
        for name, role in self.roles.items():
            role.name = name
            unknown = [m for m in role.member_of if m not in self.roles]
            if unknown:
                raise ValueError(f"role {name}: member_of names roles that are not declared: {unknown}")
        owned = [s for r in self.roles.values() for s in r.owns]
        if len(owned) != len(set(owned)):
            raise ValueError(f"a schema is owned by two roles: {sorted(owned)}")
        return self

    def owner_of(self, schema: str) -> Role | None:
        return next((r for r in self.roles.values() if schema in r.owned_schemas), None)


def role_prefix() -> str:
    return os.environ.get(ROLE_PREFIX_ENV, "")


@cache
def load_access(path: Path = ACCESS_FILE) -> AccessRegistry:
    return AccessRegistry.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
