"""The project's commands behind ``make demo``, ``make test``, ``make up`` and ``make down``.

Each command first makes the local environment whole: the warehouse (the server behind
``C360_WAREHOUSE_URL``, or an embedded PostgreSQL), the sandbox source systems, Airflow's home,
metadata database, pools and connections (as ``AIRFLOW_CONN_*`` variables), and dbt's manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from include.config import (
    COMPONENTS,
    DBT_POOL,
    DBT_POOL_SLOTS,
    DBT_PROJECT_DIR,
    ERP_URL_ENV,
    PII_SALT_ENV,
    PROJECT_ROOT,
    WAREHOUSE_CONN_ID,
    WAREHOUSE_URL_ENV,
    PgUrl,
    data_dir,
    erp_url,
    ground_truth_dir,
    redact_url,
    sandbox_dir,
    sandbox_port,
)
from include.identity.pii import protect_landed
from include.registry import load_sources
from include.warehouse import embedded_running, ensure_database, ensure_warehouse, stop_embedded

PY = sys.executable
BIN = Path(PY).parent
DEMO_SEED = 42
#: dbt's partial-parse state in its target folder.
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
#: Extract DAGs first (in registry order), then dbt, the push, the freshness check.
PIPELINE_DAGS = [
    *(f"extract_{s.name}" for s in load_sources()),
    "dbt_customer_360",
    "push_flows",
    "monitor_freshness",
]


def say(message: str) -> None:
    print(f"[c360] {message}", flush=True)


def airflow_port() -> int:
    """The Airflow UI/API port of `make up` (C360_AIRFLOW_PORT, default 8080)."""
    return int(os.environ.get("C360_AIRFLOW_PORT", "8080"))


def airflow_home() -> Path:
    return data_dir() / "airflow"


def sandbox_token() -> str:
    """The sandbox APIs' bearer token: made once per checkout, kept out of the repo."""
    path = sandbox_dir() / "token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def pii_salt() -> str:
    """The salt personal identifiers are hashed with (include.identity.pii): ``C360_PII_SALT`` if
    set, else made once per checkout and kept out of the repo. Changing it changes every hash."""
    if os.environ.get(PII_SALT_ENV):
        return os.environ[PII_SALT_ENV]
    path = data_dir() / "secrets" / "pii_salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


def protect_landed_identifiers(url: str, salt: str) -> None:
    """Rows landed before their registry fields were protected get them hashed now (PIPL: the
    warehouse keeps no resident ID number); nothing to do on an up-to-date warehouse."""
    with psycopg.connect(url) as conn:
        for source in load_sources():
            for entity in source.entities:
                exists = conn.execute(
                    "select to_regclass(%s) is not null", (f"{source.raw_schema}.{entity.name}",)
                ).fetchone()[0]
                if entity.protected and exists:
                    n = protect_landed(conn, source.raw_schema, entity.name, entity.protected, salt)
                    if n:
                        say(f"hashed the protected fields of {n:,} rows in {source.raw_schema}.{entity.name}")
        conn.commit()


def setup_roles(url: str) -> None:
    """The database roles and grants of include/registry/access.yaml (idempotent). A login that
    may not create roles (a managed server) gets a warning, not a failed demo."""
    from include.access.setup import setup_access

    try:
        report = setup_access(url)
    except psycopg.errors.InsufficientPrivilege as exc:
        say(f"database roles not set up ({exc}); run `python -m include.access setup` as the admin")
        return
    say(
        f"database roles ready ({len(report.login)} with a login, {len(report.nologin)} SET ROLE only"
        f"{', created ' + ', '.join(report.created) if report.created else ''})"
    )


def _pg_conn(url: str) -> str:
    p = PgUrl.parse(url)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": p.host,
            "port": p.port,
            "login": p.user,
            "password": p.password or None,
            "schema": p.dbname,
        }
    )


def project_env(warehouse_url: str) -> dict[str, str]:
    """Environment for Airflow, dbt and the sandbox, derived from the warehouse URL."""
    wh = PgUrl.parse(warehouse_url)
    erp = erp_url(warehouse_url)
    token = sandbox_token()
    home = airflow_home()
    redis_url = os.environ.get("C360_REDIS_URL", "redis://127.0.0.1:6379/0")
    env = dict(os.environ)
    env.update(
        {
            WAREHOUSE_URL_ENV: warehouse_url,
            ERP_URL_ENV: erp,
            "C360_SANDBOX_TOKEN": token,
            PII_SALT_ENV: pii_salt(),
            "PYTHONPATH": str(PROJECT_ROOT),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            # dbt's own profiles.yml (used outside Airflow) reads these
            "C360_WH_HOST": wh.host,
            "C360_WH_PORT": str(wh.port),
            "C360_WH_USER": wh.user,
            "C360_WH_PASSWORD": wh.password,
            "C360_WH_DBNAME": wh.dbname,
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            # Airflow
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(airflow_port()),
            # where task processes reach the Execution API (and the UI's links point): without it
            # Airflow assumes http://localhost:8080, i.e. tasks fail, or talk to another stack's
            # API server, whenever C360_AIRFLOW_PORT is not 8080
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{airflow_port()}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
            # Cosmos keeps dbt's partial-parse state here; its default (/tmp/cosmos/<dag>) is shared
            # by every checkout on the machine, whose differing projects then invalidate each
            # other's state and every dbt task parses the whole project again
            "AIRFLOW__COSMOS__CACHE_DIR": str(data_dir() / "cosmos"),
            "NO_PROXY": "*",
            f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": _pg_conn(warehouse_url),
            # change events (AssetWatcher on redis+pubsub); the sandbox publishes there too
            "AIRFLOW_CONN_C360_EVENTS": redis_url,
            "C360_SANDBOX_REDIS_URL": redis_url,
        }
    )
    # alert channels of include/registry/monitoring.yaml, as Airflow connection URIs, when given
    for var, conn_id in (
        ("C360_ALERT_WEBHOOK_URL", "C360_ALERT_WEBHOOK"),
        ("C360_ALERT_SMTP_URL", "C360_ALERT_SMTP"),
    ):
        if os.environ.get(var):
            env[f"AIRFLOW_CONN_{conn_id}"] = os.environ[var]
    for source in load_sources():
        if source.kind == "http":
            env[f"AIRFLOW_CONN_{source.conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": sandbox_port(),
                    "schema": "http",
                    "password": token,
                }
            )
        elif source.kind == "database":
            env[f"AIRFLOW_CONN_{source.conn_id.upper()}"] = _pg_conn(erp)
    env.update(component_connections(warehouse_url))
    from include.push.targets import load_targets

    for target in load_targets().targets:  # push targets the sources do not cover (marketing's API)
        key = f"AIRFLOW_CONN_{target.conn_id.upper()}"
        if target.kind == "http" and key not in env:
            env[key] = json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": sandbox_port(),
                    "schema": "http",
                    "password": token,
                }
            )
    return env


def component_connections(warehouse_url: str) -> dict[str, str]:
    """A connection per component whose role has a password (``C360_DB_PASSWORD_<ROLE>``), and the
    ``C360_<COMPONENT>_CONN_ID`` that points the component at it; without one, the component uses
    ``c360_warehouse`` as before."""
    from include.access.roles import load_access

    wh = PgUrl.parse(warehouse_url)
    env: dict[str, str] = {}
    for component in COMPONENTS:
        role = load_access().roles[component]
        password = role.password()
        if password:
            conn_id = f"{WAREHOUSE_CONN_ID}_{component}"
            login = PgUrl(wh.host, wh.port, role.db_name(), password, wh.dbname).url
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = _pg_conn(login)
            env[f"C360_{component.upper()}_CONN_ID"] = conn_id
    return env


def run(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=PROJECT_ROOT, check=True, **kwargs)


def dbt_into_target(args: list[str], env: dict[str, str]) -> None:
    """``dbt <args>`` on the project, its output written to a scratch folder and then moved file by
    file into ``dbt_project/target`` (``os.replace``: each file is swapped whole). DAG files read
    ``target/manifest.json`` whenever they are parsed (the scheduler's DAG processor, a test's
    DagBag): dbt writes it in place, and a parse meanwhile would read half a manifest. The
    partial-parse state goes into the scratch folder first, so dbt parses only what changed. The
    manifest's ``compiled_path`` fields then name the scratch folder: dbt records there where it
    wrote, and recomputes it on every compile (nothing reads it back)."""
    target = DBT_PROJECT_DIR / "target"
    target.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=target))
    try:
        state = target / PARTIAL_PARSE_FILE
        if state.exists():
            shutil.copy2(state, scratch / PARTIAL_PARSE_FILE)
        run(
            [str(BIN / "dbt"), *args, "--project-dir", str(DBT_PROJECT_DIR), "--target-path", str(scratch)],
            env,
        )
        for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
            dest = target / path.relative_to(scratch)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def airflow_metadata_url(warehouse_url: str) -> str:
    """The metadata database of the long-running Airflow (`make up`): ``<warehouse db>_airflow`` on
    the warehouse's server. SQLite serves ``airflow dags test`` (one process), not a scheduler,
    triggerer, DAG processor and API server writing at once: under load they fail with "database is
    locked", and the triggerer, which serves the change-event AssetWatchers, exits."""
    wh = PgUrl.parse(warehouse_url)
    return wh.with_dbname(f"{wh.dbname}_airflow").url


def setup(
    *, with_airflow: bool = True, customers: int | None = None, airflow_on_postgres: bool = False
) -> dict[str, str]:
    """Bring up the warehouse and the sandbox; prepare dbt and Airflow. Idempotent."""
    t0 = time.monotonic()
    url, embedded = ensure_warehouse()
    say(f"warehouse: {redact_url(url)} ({'embedded PostgreSQL' if embedded else WAREHOUSE_URL_ENV})")
    env = project_env(url)
    if airflow_on_postgres and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:
        metadata = airflow_metadata_url(url)
        ensure_database(metadata, extensions=())
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata.replace(
            "postgresql://", "postgresql+psycopg2://", 1
        )
    ensure_database(env[ERP_URL_ENV], extensions=())
    if not (sandbox_dir() / "apps.sqlite").exists():
        n = customers or int(os.environ.get("C360_DEMO_CUSTOMERS", "2000"))
        say(f"generating the sandbox source systems ({n} customers, seed {DEMO_SEED})")
        run([PY, "-m", "include.sandbox", "generate", "--customers", str(n), "--seed", str(DEMO_SEED)], env)
    run([PY, "-m", "include.sandbox", "start"], env)
    protect_landed_identifiers(url, env[PII_SALT_ENV])
    setup_roles(url)
    dbt_into_target(["parse", "--quiet"], env)
    if with_airflow:
        airflow_home().mkdir(parents=True, exist_ok=True)
        run([str(BIN / "airflow"), "db", "migrate"], env, stdout=subprocess.DEVNULL)
        import_pools(env)
    say(f"set-up done in {time.monotonic() - t0:.0f} s")
    return env


def import_pools(env: dict[str, str]) -> None:
    """One pool per rate-limited source (4 slots) and per push target (2 slots), from the registries,
    and the dbt pool (DBT_POOL_SLOTS dbt invocations at once)."""
    pools = {
        s.pool: {
            "slots": 4,
            "description": f"concurrency cap for {s.label} ({s.name})",
            "include_deferred": False,
        }
        for s in load_sources()
        if s.pool
    }
    from include.push.targets import load_targets

    for target in load_targets().targets:
        pools.setdefault(
            target.pool,
            {"slots": 2, "description": f"concurrency cap for {target.label}", "include_deferred": False},
        )
    pools[DBT_POOL] = {
        "slots": DBT_POOL_SLOTS,
        "description": "dbt invocations at once (each parses the project, then builds)",
        "include_deferred": False,
    }
    pools_file = Path(env["AIRFLOW_HOME"]) / "pools.json"
    pools_file.parent.mkdir(parents=True, exist_ok=True)
    pools_file.write_text(json.dumps(pools, ensure_ascii=False, indent=2))
    run([str(BIN / "airflow"), "pools", "import", str(pools_file)], env, stdout=subprocess.DEVNULL)


def init(args: argparse.Namespace) -> int:
    """Container start-up (docker-compose.yaml's airflow-init): the warehouse and sandbox ERP databases
    with their extensions, the database roles and grants (include/registry/access.yaml: Superset logs
    in as bi_reader), Airflow's metadata database and the pools. Every other service is its own
    container, so nothing is started here; the environment (connections included) comes from compose.
    Idempotent: run on every `docker compose up`."""
    env = dict(os.environ)
    for var in (WAREHOUSE_URL_ENV, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_HOME"):
        if not env.get(var):
            say(f"{var} is not set: `init` prepares a compose deployment; locally use `make up`")
            return 2
    ensure_database(env[WAREHOUSE_URL_ENV])
    ensure_database(env.get(ERP_URL_ENV) or erp_url(env[WAREHOUSE_URL_ENV]), extensions=())
    say("warehouse and ERP databases ready")
    setup_roles(env[WAREHOUSE_URL_ENV])
    run([str(BIN / "airflow"), "db", "migrate"], env, stdout=subprocess.DEVNULL)
    say("Airflow metadata database migrated")
    import_pools(env)
    say("pools imported")
    return 0


def demo(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    env = setup(customers=args.customers)
    run_started = datetime.now(UTC)
    for dag_id in PIPELINE_DAGS:
        started = time.monotonic()
        say(f"running {dag_id} ...")
        proc = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", dag_id],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        log = airflow_home() / "demo_logs" / f"{dag_id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            say(f"{dag_id} FAILED (exit {proc.returncode}); its output is in {log}")
            print((proc.stdout + proc.stderr)[-4000:])
            return 1
        say(f"{dag_id} succeeded in {time.monotonic() - started:.0f} s")
    say("generating the dbt docs (the data dictionary) ...")
    dbt_into_target(["docs", "generate", "--quiet"], env)
    print_summary(env[WAREHOUSE_URL_ENV], run_started)
    say(f"demo finished in {time.monotonic() - t0:.0f} s")
    return 0


def print_summary(warehouse_url: str, run_started: datetime) -> None:
    from include.identity.quality import report_lines
    from include.summary import pipeline_summary

    with psycopg.connect(warehouse_url) as conn:
        summary = pipeline_summary(conn, run_started)
    print()
    print("Customer 360 Sync: demo summary")
    print("=" * 60)
    print(f"{'source':<12}{'raw records (current)':>24}{'landed this run':>18}")
    for row in summary["sources"]:
        print(f"{row['source']:<12}{row['records']:>24,}{row['landed_this_run']:>18,}")
    print("-" * 60)
    print(f"source customer records:        {summary['crosswalk_records']:,}")
    print(f"unique customers (dim_customer): {summary['customers']:,}")
    if summary["quality"] is not None:
        print("identity quality against the sandbox ground truth (`make quality`):")
        for line in report_lines(summary["quality"]):
            print(f"  {line}")
    if summary["marts"]:
        marts = summary["marts"]
        print(f"orders (net value, CNY):         {marts['orders']:,} ({marts['lifetime_value_cny']:,.2f})")
        print(f"lifecycle:                       {marts['lifecycle']}")
        print(f"segments:                        {marts['segments']}")
        print(f"alerts today (customer_alerts):  {marts['alerts']}")
    print(f"sync-back pushes (this run):     {summary['pushes']}")
    print(f"freshness:                       {summary['freshness']}")
    print(f"pipeline health:                 {summary['health']}  (monitoring.pipeline_health)")
    print()
    print(f"connect with:  psql {redact_url(warehouse_url)}")
    print(f"dbt docs:      {DBT_PROJECT_DIR / 'target' / 'index.html'}  (served by `make docs` on :8081)")
    print(f"Airflow UI:    make up    (then open http://127.0.0.1:{airflow_port()})")
    print(f"dashboards:    make dashboards    (then open http://127.0.0.1:{dashboards_port()})")


def quality(args: argparse.Namespace) -> int:
    """Score the warehouse's resolution (marts.customer_crosswalk) against the sandbox ground truth."""
    from include.identity.quality import QualityInputError, report_lines, score_warehouse

    url, _ = ensure_warehouse()
    truth = Path(args.ground_truth) if args.ground_truth else ground_truth_dir()
    try:
        report = score_warehouse(url, truth, relation=args.relation)
    except QualityInputError as exc:
        say(str(exc))
        return 2
    print(f"Identity quality: {args.relation} in {PgUrl.parse(url).dbname} against {truth}")
    for line in report_lines(report):
        print(f"  {line}")
    if args.json:
        print(json.dumps(report.as_dict()))
    met = report.precision_met and report.recall_met
    return 1 if args.check and not met else 0


CHROMIUM_PACKAGES = ("chromium", "chromium-driver")
#: Without a Chinese font the screenshots show the labels (label_zh, the dashboards) as empty boxes.
CJK_FONT_PACKAGE = "fonts-wqy-zenhei"


def _has_chinese_font() -> bool:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    listed = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True)
    return bool(listed.stdout.strip())


def ensure_chromium() -> None:
    """Debian's chromium for the browser tests (tests/test_browser.py), and a Chinese font for their
    screenshots: installed with apt-get when missing and we are root (as CI is); otherwise those
    tests say how to get chromium. C360_SKIP_BROWSER=1 skips both."""
    if os.environ.get("C360_SKIP_BROWSER") == "1":
        return
    missing = [] if shutil.which("chromium") else list(CHROMIUM_PACKAGES)
    if not _has_chinese_font():
        missing.append(CJK_FONT_PACKAGE)
    if not missing:
        return
    if os.getuid() != 0 or not shutil.which("apt-get"):
        if "chromium" in missing:
            say("no chromium: browser tests will fail (apt-get install chromium, or C360_SKIP_BROWSER=1)")
        else:
            say(f"no Chinese font: screenshots show labels as boxes (apt-get install {CJK_FONT_PACKAGE})")
        return
    say(f"installing {', '.join(missing)} for the browser tests (apt-get) ...")
    apt_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        proc = subprocess.run(cmd, env=apt_env, capture_output=True, text=True)
        if proc.returncode != 0:
            output = (proc.stderr or proc.stdout)[-1500:]
            say(f"{' '.join(cmd)} failed (the browser tests will say so):\n{output}")
            return


def test(args: argparse.Namespace) -> int:
    """pytest on a set-up stack; afterwards it stops what it started itself (the sandbox, the
    embedded PostgreSQL) and leaves running what was up before (a `make up` stack, say)."""
    from include.sandbox.cli import running_pid  # noqa: PLC0415 - only `test` needs it

    ensure_chromium()
    embedded = not os.environ.get(WAREHOUSE_URL_ENV)
    sandbox_was_up = running_pid() is not None
    embedded_was_up = embedded and embedded_running()
    try:
        env = setup(customers=args.customers)
        return subprocess.run([PY, "-m", "pytest", *args.pytest_args], env=env, cwd=PROJECT_ROOT).returncode
    finally:
        if not sandbox_was_up:
            subprocess.run([PY, "-m", "include.sandbox", "stop"], cwd=PROJECT_ROOT, check=False)
        if embedded and not embedded_was_up and stop_embedded():
            say("embedded PostgreSQL stopped")


def docs(args: argparse.Namespace) -> int:
    env = setup(with_airflow=False)
    dbt = [str(BIN / "dbt")]
    dbt_into_target(["docs", "generate", "--quiet"], env)
    say("dbt docs on http://127.0.0.1:8081 (Ctrl-C to stop)")
    cmd = [
        *dbt,
        "docs",
        "serve",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        "8081",
    ]
    return subprocess.run([*cmd, "--no-browser"], env=env, cwd=PROJECT_ROOT).returncode


def bench(args: argparse.Namespace) -> int:
    """Benchmarks print figures (see benchmarks/README.md); extra arguments go to benchmarks.run."""
    env = setup(with_airflow=False)
    cmd = [PY, "-m", "benchmarks.run", *args.bench_args]
    return subprocess.run(cmd, env=env, cwd=PROJECT_ROOT).returncode


def dashboards_port() -> int:
    """Where `make dashboards` serves the pages (C360_DASHBOARDS_PORT, default 8083)."""
    return int(os.environ.get("C360_DASHBOARDS_PORT", "8083"))


def dashboards(args: argparse.Namespace) -> int:
    """Build the dashboards from the current warehouse into the data folder, then serve them."""
    from include.bi.dashboards import default_output_dir, write_dashboards
    from include.bi.warehouse_data import MissingRelationError, Relations

    url, _ = ensure_warehouse()
    history = tuple(args.history.split(".", 1)) if args.history else None
    if history is not None and len(history) != 2:
        say(f"--history {args.history!r}: give it as schema.relation")
        return 2
    relations = Relations(schema=args.schema, history=history)
    out = Path(args.out) if args.out else default_output_dir()
    started = time.monotonic()
    try:
        with psycopg.connect(url) as conn:
            build = write_dashboards(conn, out, relations=relations, max_customers=args.max_customers)
    except MissingRelationError as exc:
        say(str(exc))
        return 2
    say(
        f"dashboards from schema {args.schema} in {time.monotonic() - started:.1f} s: {build.out_dir} "
        f"(customer 360: {build.customers_embedded:,} of {build.customers_total:,} customers embedded)"
    )
    if args.no_serve:
        for page in build.pages.values():
            print(page)
        return 0
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(build.out_dir))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as exc:
        say(
            f"cannot serve on 127.0.0.1:{args.port} ({exc.strerror}): "
            "choose another port with --port or C360_DASHBOARDS_PORT"
        )
        return 1
    link = f"http://127.0.0.1:{args.port}/"
    say(f"dashboards on {link} (overview.html, customer_360.html); Ctrl-C to stop")
    if args.open and (
        sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        import webbrowser

        webbrowser.open(link)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _pidfile() -> Path:
    return airflow_home() / "standalone.pid"


def up(args: argparse.Namespace) -> int:
    env = setup(airflow_on_postgres=True)
    pid = _read_pid(_pidfile())
    if pid:
        say(f"Airflow already running (pid {pid}): http://127.0.0.1:{airflow_port()}")
        return 0
    with open(airflow_home() / "standalone.log", "ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "airflow"), "standalone"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _pidfile().write_text(str(proc.pid))
    import httpx

    for _ in range(180):
        try:
            health = f"http://127.0.0.1:{airflow_port()}/api/v2/monitor/health"
            if httpx.get(health, timeout=2).status_code == 200:
                log = airflow_home() / "standalone.log"
                say(f"Airflow UI: http://127.0.0.1:{airflow_port()} (log: {log})")
                return 0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(1)
    say(f"Airflow did not come up; see {airflow_home() / 'standalone.log'}")
    return 1


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def down(args: argparse.Namespace) -> int:
    pid = _read_pid(_pidfile())
    if pid:
        os.killpg(pid, signal.SIGTERM)
        # the scheduler shuts down gracefully, waiting for the tasks it runs: give it a minute,
        # then stop what is left of the group (it outlived `make down` and kept running tasks)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(1)
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        say("Airflow stopped")
    _pidfile().unlink(missing_ok=True)
    subprocess.run([PY, "-m", "include.sandbox", "stop"], cwd=PROJECT_ROOT, check=False)
    if not os.environ.get(WAREHOUSE_URL_ENV) and stop_embedded():
        say("embedded PostgreSQL stopped")
    return 0


def env_cmd(args: argparse.Namespace) -> int:
    """Print ``export`` lines for a shell: ``eval "$(make env)"``."""
    url, _ = ensure_warehouse()
    env = project_env(url)
    metadata = PgUrl.parse(airflow_metadata_url(url))
    with psycopg.connect(metadata.with_dbname("postgres").url) as conn:
        on_postgres = conn.execute(
            "select 1 from pg_database where datname = %s", (metadata.dbname,)
        ).fetchone()
    if on_postgres and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:  # `make up` made it
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata.url.replace(
            "postgresql://", "postgresql+psycopg2://", 1
        )
    for key, value in env.items():
        if key.startswith(("C360_", "AIRFLOW", "DBT_")):
            print(f"export {key}={shlex.quote(value)}")
    return 0


def access(args: argparse.Namespace) -> int:
    """``python -m include.access`` on this project's warehouse (started if embedded)."""
    url, _ = ensure_warehouse()
    env = project_env(url)
    return subprocess.run(
        [PY, "-m", "include.access", *args.access_args], env=env, cwd=PROJECT_ROOT
    ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="c360", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the whole pipeline once and print a summary")
    p.add_argument("--customers", type=int, default=None, help="sandbox size on first generation")
    p.set_defaults(func=demo)
    p = sub.add_parser("test", help="set up, then run the test suite")
    p.add_argument("--customers", type=int, default=None)
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=test)
    sub.add_parser("up", help="Airflow standalone (UI on :8080) with the sandbox").set_defaults(func=up)
    sub.add_parser("init", help="prepare a container deployment (compose's airflow-init)").set_defaults(
        func=init
    )
    sub.add_parser("down", help="stop Airflow, the sandbox and the embedded PostgreSQL").set_defaults(
        func=down
    )
    p = sub.add_parser("bench", help="run the benchmarks and print their figures")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=bench)
    p = sub.add_parser("quality", help="score identity resolution against the sandbox ground truth")
    p.add_argument("--ground-truth", default=None, help="folder with links.csv (default: the data folder's)")
    p.add_argument("--relation", default="marts.customer_crosswalk", help="resolution to score")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    p.set_defaults(func=quality)
    sub.add_parser("docs", help="build the dbt docs and serve them on :8081").set_defaults(func=docs)
    p = sub.add_parser("dashboards", help="build the HTML dashboards from the warehouse and serve them")
    p.add_argument("--schema", default="bi", help="schema of the mart-shaped views to read (default bi)")
    p.add_argument(
        "--history",
        default=None,
        help="golden-record history, schema.relation (default bi.customer_change_history on schema bi, "
        "else snapshots.snap_dim_customer)",
    )
    p.add_argument("--out", default=None, help="output folder (default: the data folder's dashboards/)")
    p.add_argument("--max-customers", type=int, default=5000, help="customers embedded in the 360 page")
    p.add_argument(
        "--port", type=int, default=dashboards_port(), help="port to serve on (C360_DASHBOARDS_PORT)"
    )
    p.add_argument("--no-serve", action="store_true", help="only write the pages")
    p.add_argument(
        "--open", action="store_true", help="also open the overview in a browser when there is a display"
    )
    p.set_defaults(func=dashboards)
    sub.add_parser("env", help="print export lines for this environment").set_defaults(func=env_cmd)
    p = sub.add_parser(
        "access", help="database roles: `access setup`, or `access matrix` to print the role test matrix"
    )
    p.add_argument("access_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=access)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
