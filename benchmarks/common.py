"""What the benchmarks share: the server, throwaway databases, seed data and the result record.

Every database a run creates is named ``c360_bench_<pid>_<purpose>`` and dropped at the end; generated
files go to a temporary folder (``C360_DATA_DIR`` and ``C360_LANDING_DIR`` point there for the run),
so a benchmark never touches the project's ``.data`` or its warehouse.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from include.config import WAREHOUSE_URL_ENV, PgUrl

DB_PREFIX = "c360_bench_"
#: The sandbox is generated once per run at this small, fixed scale; benchmarks multiply its rows.
SEED = 42
SEED_CUSTOMERS = 3_000
AS_OF = "2026-01-01"


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def vm_hwm_kb(pid: int | str = "self") -> int | None:
    """The peak resident set (``VmHWM``, kB) of process ``pid``'s address space; None once it is gone.

    Not ``ru_maxrss``: Linux copies a process' high-water mark into the child it forks and keeps it
    through exec, so a child spawned by a process that once held 365 MB (the identity benchmark,
    after generating 400k customers in the same run) reports at least 365 MB whatever it uses itself.
    ``VmHWM`` belongs to the address space, which exec replaces.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return None  # gone, or a zombie (no address space left)


class PeakRss(threading.Thread):
    """Another process' ``VmHWM`` (see vm_hwm_kb), read every ``interval`` s until ``stop()``.

    ``peak_kb`` is the largest value read, None if none could be. VmHWM only grows, so the figure
    misses only what the process added in its last ``interval`` before exiting.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb: int | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            value = vm_hwm_kb(self.pid)
            if value is not None and (self.peak_kb is None or value > self.peak_kb):
                self.peak_kb = value
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> int | None:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak_kb


def server_from_env() -> PgUrl:
    url = os.environ.get(WAREHOUSE_URL_ENV)
    if not url:
        raise SystemExit(
            f"{WAREHOUSE_URL_ENV} is not set. Point it at a PostgreSQL server the benchmarks may create "
            f"databases on (they are named {DB_PREFIX}* and dropped afterwards), e.g. "
            f"{WAREHOUSE_URL_ENV}=postgresql://postgres@127.0.0.1:5432/postgres python -m benchmarks.run"
        )
    return PgUrl.parse(url)


@dataclass
class Result:
    """One benchmark's figure next to its baseline and target; ``details`` holds the raw numbers."""

    name: str
    figure: float
    unit: str
    target: str
    met: bool | None
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    ratio_unit: str = "x"
    details: dict[str, Any] = field(default_factory=dict)


class Workspace:
    """Throwaway databases on the server and a temporary folder; ``close()`` removes both."""

    def __init__(self, server: PgUrl) -> None:
        self.server = server
        self.dir = Path(tempfile.mkdtemp(prefix=DB_PREFIX))
        self.databases: list[str] = []
        self._saved_env = {k: os.environ.get(k) for k in ("C360_DATA_DIR", "C360_LANDING_DIR")}
        # generate() resets whatever these point at (it empties the marketing landing folder).
        os.environ["C360_DATA_DIR"] = str(self.dir / "data")
        os.environ["C360_LANDING_DIR"] = str(self.dir / "data" / "landing")
        self._erp_url: str | None = None
        self._erp_rows: int | None = None

    # databases ------------------------------------------------------------------------------------
    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.server.with_dbname("postgres").url, autocommit=True)

    def fresh_database(self, purpose: str) -> str:
        """An empty database ``c360_bench_<pid>_<purpose>`` (recreated if it exists); returns its URL."""
        name = f"{DB_PREFIX}{os.getpid()}_{purpose}"
        with self._admin() as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        if name not in self.databases:
            self.databases.append(name)
        return self.server.with_dbname(name).url

    def server_version(self) -> str:
        with self._admin() as conn:
            return conn.execute("show server_version").fetchone()[0]

    def checkpoint(self, url: str) -> bool:
        """Flush dirty pages so one load does not pay for the previous one's writes."""
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("checkpoint")
        except psycopg.errors.InsufficientPrivilege:
            return False
        return True

    # seed data ------------------------------------------------------------------------------------
    def erp_url(self) -> str:
        """The sandbox, generated once (fixed seed and as-of): apps in the temp folder, ERP in a database."""
        if self._erp_url is None:
            from include.sandbox.generator import generate

            url = self.fresh_database("erp")
            say(f"generating the sandbox ({SEED_CUSTOMERS:,} customers, seed {SEED}) as seed data")
            generate(SEED_CUSTOMERS, SEED, as_of=AS_OF, erp_url=url)
            self._erp_url = url
        return self._erp_url

    def crm_accounts(self) -> list[dict[str, Any]]:
        """The generated CRM accounts as the sandbox API serves them (one dict per account)."""
        from include.sandbox import stores

        self.erp_url()
        table = stores.app_tables()["crm_accounts"]
        conn = sqlite3.connect(stores.apps_db_path())
        try:
            rows = conn.execute(f"select {', '.join(table.fields)} from {table.table} order by {table.key}")
            return [dict(zip(table.fields, row, strict=True)) for row in rows]
        finally:
            conn.close()

    def erp_source(self, rows: int) -> str:
        """The ERP database with ``erp.customer_master`` grown to exactly ``rows`` rows; returns its URL.

        The generated customers are copied with a ``-<k>`` suffix on ``cust_no`` and ``modified_time``
        moved back ``k`` minutes, so copies differ in content and spread over time like real edits.
        The order and invoice tables are dropped: only the customer master is read here.
        """
        url = self.erp_url()
        if self._erp_rows == rows:
            return url
        from include.sandbox import stores

        columns = stores.erp_columns("customer_master")
        exprs = []
        for column in columns:
            if column == "cust_no":
                exprs.append(sql.SQL("case when k = 0 then s.cust_no else s.cust_no || '-' || k end"))
            elif column == "modified_time":
                exprs.append(sql.SQL("greatest(s.created_time, s.modified_time - k * interval '1 minute')"))
            else:
                exprs.append(sql.SQL("s.{}").format(sql.Identifier(column)))
        say(f"growing erp.customer_master to {rows:,} rows")
        with psycopg.connect(url) as conn:
            conn.execute("drop table if exists erp.invoices, erp.sales_orders")
            conn.execute("create table if not exists erp.customer_master_seed as table erp.customer_master")
            seed_rows = conn.execute("select count(*) from erp.customer_master_seed").fetchone()[0]
            conn.execute("truncate erp.customer_master")
            conn.execute(
                sql.SQL(
                    "insert into erp.customer_master ({cols}) select {exprs} "
                    "from generate_series(0, %s) as k cross join erp.customer_master_seed as s "
                    "order by k, s.cust_no limit %s"
                ).format(
                    cols=sql.SQL(", ").join(map(sql.Identifier, columns)), exprs=sql.SQL(", ").join(exprs)
                ),
                (rows // seed_rows, rows),
            )
            conn.execute("analyze erp.customer_master")
        self._erp_rows = rows
        return url

    # ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        dropped = []
        try:
            with self._admin() as conn:
                for name in self.databases:
                    drop = sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                    conn.execute(drop)
                    dropped.append(name)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if dropped:
            say(f"dropped {', '.join(dropped)}")
