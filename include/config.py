"""Project settings, read from the environment with sensible local defaults.

Everything that differs between a laptop, CI and production is an environment variable;
nothing here opens a connection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REGISTRY_DIR = PROJECT_ROOT / "include" / "registry"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
#: Airflow pool of every dbt task: a dbt invocation is a CPU-heavy process (parse, compile, run);
#: a batch build's dozens of ready model tasks at once only slowed each other down (and starved
#: the Airflow processes) on a small machine.
DBT_POOL = "dbt_warehouse"
DBT_POOL_SLOTS = int(os.environ.get("C360_DBT_CONCURRENCY", "2"))

#: The warehouse the pipeline lands into and dbt builds in. Unset: an embedded PostgreSQL.
WAREHOUSE_URL_ENV = "C360_WAREHOUSE_URL"
#: The sandbox ERP database. Unset: database ``erp_sandbox`` on the warehouse's server.
ERP_URL_ENV = "C360_ERP_URL"


def data_dir() -> Path:
    """Project-local folder for generated data, the embedded database and run state."""
    return Path(os.environ.get("C360_DATA_DIR", PROJECT_ROOT / ".data"))


def landing_dir() -> Path:
    """Where file-based sources drop their files (one sub-folder per source)."""
    return Path(os.environ.get("C360_LANDING_DIR", data_dir() / "landing"))


def ground_truth_dir() -> Path:
    """Where the generator writes which source records are the same real customer.

    The pipeline never reads this folder; only accuracy tests and benchmarks do.
    """
    return data_dir() / "ground_truth"


def sandbox_dir() -> Path:
    return data_dir() / "sandbox"


PII_SALT_ENV = "C360_PII_SALT"


def pii_salt() -> str:
    """The salt personal identifiers are hashed with before landing (``C360_PII_SALT``; ``make``
    makes one per checkout). Task-time only; a clear error when it is missing, never a default:
    hashes made with another salt would silently stop matching."""
    salt = os.environ.get(PII_SALT_ENV, "")
    if not salt:
        raise RuntimeError(
            f"{PII_SALT_ENV} is not set. Resident ID numbers are hashed with it before landing: set it "
            "once per installation (any long random string) and keep it; `make` sets one for you."
        )
    return salt


def sandbox_port() -> int:
    return int(os.environ.get("C360_SANDBOX_PORT", "8765"))


@dataclass(frozen=True)
class PgUrl:
    """A PostgreSQL URL split into the parts dbt profiles and Airflow connections want."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def parse(cls, url: str) -> PgUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"{redact_url(url)!r} is not a PostgreSQL URL; expected "
                "postgresql://user:password@host:port/dbname"
            )
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or "",
            dbname=(parts.path or "/").lstrip("/") or "postgres",
        )

    @property
    def url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return urlunsplit(("postgresql", f"{auth}@{self.host}:{self.port}", f"/{self.dbname}", "", ""))

    def with_dbname(self, dbname: str) -> PgUrl:
        return PgUrl(self.host, self.port, self.user, self.password, dbname)


def redact_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def warehouse_url() -> str:
    """The warehouse URL; raises with a hint when neither set nor started by `make`."""
    url = os.environ.get(WAREHOUSE_URL_ENV)
    if not url:
        raise RuntimeError(
            f"{WAREHOUSE_URL_ENV} is not set. Run through `make` (which starts an embedded "
            "PostgreSQL when it is unset) or export it, e.g. "
            "postgresql://postgres@127.0.0.1:5432/c360"
        )
    return url


def erp_url(warehouse: str | None = None) -> str:
    """``C360_ERP_URL``, else database ``erp_sandbox`` on the warehouse's server."""
    return (
        os.environ.get(ERP_URL_ENV)
        or PgUrl.parse(warehouse or warehouse_url()).with_dbname("erp_sandbox").url
    )


#: Airflow connection ids the DAGs resolve at run time.
WAREHOUSE_CONN_ID = "c360_warehouse"
#: Components that may connect as their own database role (include/registry/access.yaml).
COMPONENTS = ("loader", "transformer", "pusher")


def component_conn_id(component: str) -> str:
    """The warehouse connection of ``component`` (loader, transformer, pusher):
    ``C360_<COMPONENT>_CONN_ID`` when set (e.g. ``c360_warehouse_loader``, a login as the loader
    role), else ``c360_warehouse``, the single login of the demo. Reads the environment only."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; one of {COMPONENTS}")
    return os.environ.get(f"C360_{component.upper()}_CONN_ID") or WAREHOUSE_CONN_ID


def connection_url(conn_id: str) -> str:
    """A postgres Airflow connection as a libpq URL. Call it in tasks only: it reads the connection."""
    from airflow.sdk import BaseHook

    return libpq_url(BaseHook.get_connection(conn_id).get_uri())


def libpq_url(airflow_uri: str) -> str:
    """Airflow renders postgres connections as ``postgres://...``; psycopg wants ``postgresql://``."""
    scheme, rest = airflow_uri.split("://", 1)
    return f"postgresql://{rest}" if scheme in ("postgres", "postgresql") else airflow_uri
