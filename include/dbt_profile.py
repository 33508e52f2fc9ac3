"""dbt profile for Cosmos, built from the ``c360_warehouse`` Airflow connection."""

from __future__ import annotations

from typing import Any

from cosmos import ProfileConfig
from cosmos.profiles import PostgresUserPasswordProfileMapping

from include.config import component_conn_id

DBT_PROFILE = "customer_360"
DBT_TARGET_SCHEMA = "analytics"
#: As dbt_project/profiles.yml: a build (the event-mode one) runs two models or tests at once; Cosmos's
#: default is one.
DBT_THREADS = 2


class PostgresProfileMapping(PostgresUserPasswordProfileMapping):
    """Cosmos's Postgres mapping, but a connection without a password (trust, peer or
    ``.pgpass`` authentication, as on a developer's machine) is accepted too."""

    required_fields = ["host", "user", "dbname"]

    @property
    def profile(self) -> dict[str, Any | None]:
        profile = super().profile
        if not self.conn.password:
            # dbt-postgres insists on a password key; libpq ignores an empty one.
            profile["password"] = ""
        return profile

    @property
    def env_vars(self) -> dict[str, str]:
        return super().env_vars if self.conn.password else {}


def warehouse_profile() -> ProfileConfig:
    return ProfileConfig(
        profile_name=DBT_PROFILE,
        target_name="airflow",
        profile_mapping=PostgresProfileMapping(
            conn_id=component_conn_id("transformer"),
            profile_args={"schema": DBT_TARGET_SCHEMA, "threads": DBT_THREADS},
        ),
    )
