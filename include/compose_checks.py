"""Checks of docker-compose.yaml and what it references, by parsing (no Docker engine needed).

Each ``check_*`` function takes the parsed compose file (and the project root where files matter)
and returns a list of problems, one readable sentence each; an empty list means the check passed.
``tests/test_deployment.py`` runs them on the real file and on broken copies of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

Compose = dict[str, Any]

#: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``; ``$${...}`` is an escape.
_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
#: host:port after ``//`` or ``@`` in a URL, e.g. ``postgresql://u:p@warehouse:5432/c360``.
_URL_HOST_PORT = re.compile(r"(?:@|//)([a-z][a-z0-9-]*):(\d+)")
#: the port a health check probes: ``-p 5432``, ``"-p", "6379"``, ``:8080/``.
_HEALTH_PORT = re.compile(r"(?:-p[ ,\"']+(\d+)|:(\d+)/)")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|SALT|FERNET")
HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"


def load(path: Path) -> Compose:
    return yaml.safe_load(path.read_text())


def variables(text: str) -> dict[str, str | None]:
    """Every ``${VAR}`` of the compose text with its default (None: no default)."""
    found: dict[str, str | None] = {}
    for name, op, value in _VAR.findall(text):
        default = value if op in (":-", "-") else None
        if found.get(name) is None:
            found[name] = default
    return found


def required_variables(text: str) -> set[str]:
    return {name for name, op, _ in _VAR.findall(text) if op in (":?", "?")}


def env_example(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def resolve(value: str, defaults: dict[str, str | None]) -> str:
    """A compose string with every ``${VAR...}`` replaced by its default (empty when it has none)."""
    return _VAR.sub(lambda m: defaults.get(m.group(1)) or "", str(value))


def _flat(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def health_port(service: dict) -> int | None:
    test = _flat((service.get("healthcheck") or {}).get("test"))
    match = _HEALTH_PORT.search(test)
    return int(next(g for g in match.groups() if g)) if match else None


def published_ports(service: dict, defaults: dict[str, str | None]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of every ``ports`` entry (short syntax)."""
    out = []
    for entry in service.get("ports") or []:
        parts = resolve(entry, defaults).split(":")
        ip = parts[0] if len(parts) == 3 else ""
        host, container = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", parts[-1])
        out.append((ip, int(host) if host else 0, int(container.split("/")[0])))
    return out


def check_images(compose: Compose, root: Path) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        build, image = service.get("build"), service.get("image")
        if not build and not image:
            problems.append(f"service {name} has neither an image nor a build")
        if build:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if not (root / context / dockerfile).is_file():
                problems.append(f"service {name} builds from {context}/{dockerfile}, which does not exist")
            else:
                problems += _dockerfile_copies(root / context, dockerfile, name)
        elif image and ":" not in image.split("/")[-1]:
            problems.append(f"service {name} uses image {image} without a tag")
    return problems


def _dockerfile_copies(context: Path, dockerfile: str, service: str) -> list[str]:
    problems = []
    for line in (context / dockerfile).read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            for src in (w for w in words[1:-1] if not w.startswith("--")):
                if not (context / src).exists():
                    problems.append(f"service {service}: {dockerfile} copies {src}, missing in {context}")
    return problems


def check_variables_documented(text: str, example: dict[str, str]) -> list[str]:
    used = variables(text)
    problems = [f"${{{v}}} is used but not listed in .env.example" for v in sorted(set(used) - set(example))]
    problems += [
        f".env.example lists {v}, which the compose file does not use"
        for v in sorted(set(example) - set(used))
    ]
    for name in sorted(required_variables(text) | {v for v in used if _SECRET_NAME.search(v)}):
        if example.get(name):
            problems.append(f".env.example gives {name} a value: secrets stay empty there (filled in .env)")
    return problems


def check_ports(compose: Compose, defaults: dict[str, str | None]) -> list[str]:
    """Host ports unique and on loopback; a published container port is the one the service's health
    check probes; every URL naming a service uses that service's port."""
    problems = []
    seen: dict[int, str] = {}
    service_port = {name: health_port(s) for name, s in compose["services"].items()}
    for name, service in compose["services"].items():
        for ip, host, container in published_ports(service, defaults):
            if ip != "127.0.0.1":
                problems.append(
                    f"service {name} publishes port {host} on {ip or 'every interface'}, not 127.0.0.1"
                )
            if host in seen:
                problems.append(f"host port {host} is published by both {seen[host]} and {name}")
            seen[host] = name
            if service_port[name] != container:
                problems.append(
                    f"service {name} publishes container port {container} but its health check probes "
                    f"{service_port[name]}"
                )
        texts = [*environment(service).values(), _flat(service.get("command"))]
        for text in texts:
            for host, port in _URL_HOST_PORT.findall(resolve(text, defaults)):
                if host not in compose["services"]:
                    problems.append(f"service {name} points at {host}:{port}, which is not a service")
                elif service_port[host] is not None and int(port) != service_port[host]:
                    problems.append(
                        f"service {name} points at {host}:{port}, but {host} serves (and is health-checked "
                        f"on) {service_port[host]}"
                    )
    return problems


def check_volumes(compose: Compose, root: Path) -> list[str]:
    declared = set(compose.get("volumes") or {})
    used, problems = set(), []
    for name, service in compose["services"].items():
        for entry in service.get("volumes") or []:
            source = entry.split(":", 1)[0] if isinstance(entry, str) else entry.get("source", "")
            if source.startswith((".", "/")):
                if not (root / source).exists():
                    problems.append(f"service {name} bind-mounts {source}, which does not exist")
            elif source:
                used.add(source)
                if source not in declared:
                    problems.append(f"service {name} uses volume {source}, not declared under volumes:")
    problems += [f"volume {v} is declared but no service uses it" for v in sorted(declared - used)]
    return problems


def check_depends_on(compose: Compose) -> list[str]:
    services, problems = compose["services"], []
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"service {name}: depends_on without conditions (use service_healthy)")
            continue
        for target, spec in depends.items():
            condition = (spec or {}).get("condition")
            if target not in services:
                problems.append(f"service {name} depends on {target}, which is not a service")
            elif condition == HEALTHY and not services[target].get("healthcheck"):
                problems.append(
                    f"service {name} waits for {target} to be healthy, but it has no health check"
                )
            elif condition == COMPLETED and services[target].get("restart", "no") != "no":
                problems.append(f"service {name} waits for {target} to complete, but {target} restarts")
            elif condition not in (HEALTHY, COMPLETED):
                problems.append(f"service {name} depends on {target} with condition {condition}")
    for name, service in services.items():  # every long-running service is health-checked
        if service.get("restart", "no") != "no" and not service.get("healthcheck"):
            problems.append(f"service {name} has no health check")
    return problems


AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker", "init"}


def check_airflow(compose: Compose, defaults: dict[str, str | None]) -> list[str]:
    """Every Airflow service runs on the one x-airflow-common config: CeleryExecutor, Redis broker,
    the metadata database, the same image; together they run every component."""
    common = compose.get("x-airflow-common")
    if not common:
        return ["no x-airflow-common block"]
    env = environment(common)
    problems = []
    if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
        problems.append(f"executor is {env.get('AIRFLOW__CORE__EXECUTOR')}, not CeleryExecutor")
    broker = resolve(env.get("AIRFLOW__CELERY__BROKER_URL", ""), defaults)
    if not broker.startswith("redis://") or _service_of(broker) not in compose["services"]:
        problems.append(f"Celery broker {broker!r} is not the compose Redis")
    metadata = _service_of(resolve(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""), defaults))
    results = _service_of(resolve(env.get("AIRFLOW__CELERY__RESULT_BACKEND", ""), defaults))
    if metadata not in compose["services"] or results != metadata:
        problems.append("metadata database and Celery result backend are not the same compose PostgreSQL")
    elif "postgres" not in compose["services"][metadata].get("image", ""):
        problems.append(f"metadata database {metadata} is not a PostgreSQL image")
    execution = _service_of(env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
    airflow = {n: s for n, s in compose["services"].items() if n.startswith("airflow-") and n != "airflow-db"}
    if execution not in airflow:
        problems.append(f"Execution API URL points at {execution}, not an Airflow service")
    commands = set()
    for name, service in airflow.items():
        if service.get("image") != common.get("image") or service.get("build") != common.get("build"):
            problems.append(f"{name} does not use x-airflow-common's image")
        service_env = environment(service)
        for key, value in env.items():
            if service_env.get(key) != value:
                problems.append(f"{name} does not share x-airflow-common's {key}")
        command = _flat(service.get("command"))
        commands |= {c for c in AIRFLOW_COMMANDS if c in command}
    missing = AIRFLOW_COMMANDS - commands
    if missing:
        problems.append(f"no Airflow service runs {', '.join(sorted(missing))}")
    workers = [s for s in airflow.values() if "celery worker" in _flat(s.get("command"))]
    replicas = [int(resolve((w.get("deploy") or {}).get("replicas", 1), defaults) or 1) for w in workers]
    if sum(replicas) < 2:
        problems.append("fewer than two Celery workers: the work cannot spread")
    return problems


def _service_of(url: str) -> str | None:
    match = re.search(r"//(?:[^@/]*@)?([a-z][a-z0-9-]*)", url)
    return match.group(1) if match else None


def airflow_connection_ids(compose: Compose) -> set[str]:
    env = environment(compose["x-airflow-common"])
    return {k.removeprefix("AIRFLOW_CONN_").lower() for k in env if k.startswith("AIRFLOW_CONN_")}


def load_bundle(bundle: Path) -> dict[str, dict[str, dict]]:
    """The Superset bundle's YAML files by kind (databases, datasets, charts, dashboards) and path."""
    out: dict[str, dict[str, dict]] = {"databases": {}, "datasets": {}, "charts": {}, "dashboards": {}}
    for path in sorted(bundle.rglob("*.yaml")):
        rel = path.relative_to(bundle)
        if rel.parts[0] in out:
            out[rel.parts[0]][rel.as_posix()] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return out


def check_superset_bundle(bundle: Path, marts: dict[str, dict[str, str]], warehouse_db: str) -> list[str]:
    """The import bundle hangs together and matches the warehouse: datasets are ``bi`` views with exactly
    their mart's columns (Chinese labels as verbose names), charts use their dataset's columns, every
    dashboard's charts exist, and the database connection is the read-only login without a password."""
    b = load_bundle(bundle)
    problems = []
    metadata = (
        yaml.safe_load((bundle / "metadata.yaml").read_text()) if (bundle / "metadata.yaml").exists() else {}
    )
    if metadata.get("type") != "assets" or metadata.get("version") != "1.0.0":
        problems.append("metadata.yaml must say type assets, version 1.0.0 (Superset's ImportAssetsCommand)")
    uuids = [c["uuid"] for kind in b.values() for c in kind.values()]
    problems += [
        f"uuid {u} is used twice in the bundle" for u in sorted({u for u in uuids if uuids.count(u) > 1})
    ]
    databases = {c["uuid"]: (path, c) for path, c in b["databases"].items()}
    for path, db in b["databases"].items():
        url = db["sqlalchemy_uri"]
        match = re.match(r"postgresql\+psycopg2://([^:@]+):([^@]*)@([a-z-]+):(\d+)/(\w+)$", url)
        if not match:
            problems.append(
                f"{path}: {url} is not a postgresql+psycopg2 URL with a user and a masked password"
            )
            continue
        user, password, _host, _port, dbname = match.groups()
        if set(password) != {"X"}:
            problems.append(f"{path}: the URI carries a password; keep Superset's mask XXXXXXXXXX")
        if user != "bi_reader":
            problems.append(f"{path}: Superset must log in as the read-only bi_reader, not {user}")
        if dbname != warehouse_db:
            problems.append(f"{path}: database {dbname} is not the warehouse's {warehouse_db}")
        if db.get("allow_dml") or db.get("allow_file_upload") or db.get("allow_ctas") or db.get("allow_cvas"):
            problems.append(f"{path}: the BI connection must be read-only (no DML, uploads, CTAS or CVAS)")
    datasets = {}
    for path, ds in b["datasets"].items():
        datasets[ds["uuid"]] = ds
        if ds["database_uuid"] not in databases:
            problems.append(f"{path}: database_uuid {ds['database_uuid']} is not in databases/")
        if ds.get("schema") != "bi":
            problems.append(
                f"{path}: reads schema {ds.get('schema')}; dashboards read the masked bi views only"
            )
        mart = marts.get(ds["table_name"])
        if mart is None:
            problems.append(f"{path}: bi.{ds['table_name']} has no mart of that name in dbt_project")
            continue
        columns = {c["column_name"]: c for c in ds["columns"]}
        if list(columns) != list(mart):
            problems.append(f"{path}: columns {list(columns)} differ from the mart's {list(mart)}")
        for name, label in mart.items():
            if name in columns and columns[name].get("verbose_name") != label:
                problems.append(
                    f"{path}: {name} is labelled {columns[name].get('verbose_name')!r}, not {label!r}"
                )
        if ds.get("main_dttm_col") and not columns.get(ds["main_dttm_col"], {}).get("is_dttm"):
            problems.append(f"{path}: main_dttm_col {ds['main_dttm_col']} is not a temporal column")
    charts = {}
    for path, chart in b["charts"].items():
        charts[chart["uuid"]] = chart
        ds = datasets.get(chart["dataset_uuid"])
        if ds is None:
            problems.append(f"{path}: dataset_uuid {chart['dataset_uuid']} is not in datasets/")
            continue
        if chart["params"].get("viz_type") != chart["viz_type"]:
            problems.append(f"{path}: params.viz_type differs from viz_type")
        known = {c["column_name"] for c in ds["columns"]}
        for f in chart["params"].get("adhoc_filters") or []:
            if f.get("expressionType") == "SIMPLE" and not f.get("subject"):
                problems.append(
                    f"{path}: a filter without a column (Superset answers 'Field may not be null')"
                )
        for column in sorted(chart_columns(chart["params"]) - known):
            problems.append(f"{path}: uses column {column}, which bi.{ds['table_name']} does not have")
    for path, dash in b["dashboards"].items():
        in_layout = [
            node["meta"]
            for node in dash["position"].values()
            if isinstance(node, dict) and node.get("type") == "CHART"
        ]
        if not in_layout:
            problems.append(f"{path}: no chart in its layout")
        for meta in in_layout:
            if meta.get("uuid") not in charts:
                problems.append(
                    f"{path}: chart {meta.get('sliceName')} ({meta.get('uuid')}) is not in charts/"
                )
            if not isinstance(meta.get("chartId"), int):
                problems.append(
                    f"{path}: chart {meta.get('sliceName')} has no chartId (the importer needs one)"
                )
    return problems


def chart_columns(params: dict) -> set[str]:
    """Columns a chart's form data names directly (group-bys, axes, raw columns, ordering, filters) and
    the identifiers of its SQL metrics that look like columns (lower-case names other than SQL words)."""
    names: set[str] = set()
    for key in ("groupby", "all_columns", "columns"):
        names |= {c for c in params.get(key) or [] if isinstance(c, str)}
    for key in ("x_axis", "granularity_sqla"):
        if isinstance(params.get(key), str):
            names.add(params[key])
    for order in params.get("order_by_cols") or []:
        names.add(yaml.safe_load(order)[0])
    for f in params.get("adhoc_filters") or []:
        if f.get("subject"):
            names.add(f["subject"])
    metrics = [params.get("metric"), *(params.get("metrics") or [])]
    for metric in (m for m in metrics if isinstance(m, dict)):
        sql = metric.get("sqlExpression") or ""
        names |= set(re.findall(r"\b[a-z_][a-z0-9_]*\b", sql)) - _SQL_WORDS
    return names


_SQL_WORDS = {
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "distinct",
    "case",
    "when",
    "then",
    "else",
    "end",
    "and",
    "or",
}


def dashboard_marts(bundle: Path) -> dict[str, set[str]]:
    """For every dashboard file of the bundle, the tables (= marts) its charts' datasets read."""
    b = load_bundle(bundle)
    datasets = {d["uuid"]: d["table_name"] for d in b["datasets"].values()}
    charts = {c["uuid"]: datasets.get(c["dataset_uuid"]) for c in b["charts"].values()}
    out = {}
    for path, dash in b["dashboards"].items():
        metas = [
            n["meta"] for n in dash["position"].values() if isinstance(n, dict) and n.get("type") == "CHART"
        ]
        out[path] = {charts.get(m.get("uuid")) for m in metas} - {None}
    return out


def check_exposures(bundle: Path, exposures: list[dict], superset_port: int) -> list[str]:
    """Every Superset dashboard is a dbt exposure of type dashboard that depends on exactly the marts
    its charts read, with its URL."""
    problems = []
    by_file = {(e.get("config") or {}).get("meta", {}).get("superset_bundle"): e for e in exposures}
    slugs = {p: d.get("slug") for p, d in load_bundle(bundle)["dashboards"].items()}
    for path, marts in dashboard_marts(bundle).items():
        exposure = by_file.get(path)
        if exposure is None:
            problems.append(f"Superset dashboard {path} has no dbt exposure (meta.superset_bundle: {path})")
            continue
        refs = {re.sub(r"ref\('([^']+)'\)", r"\1", d) for d in exposure.get("depends_on", [])}
        if exposure.get("type") != "dashboard":
            problems.append(f"exposure {exposure['name']} is of type {exposure.get('type')}, not dashboard")
        if refs != marts:
            problems.append(
                f"exposure {exposure['name']} depends on {sorted(refs)}; its charts read {sorted(marts)}"
            )
        expected_url = f"http://127.0.0.1:{superset_port}/superset/dashboard/{slugs[path]}/"
        if exposure.get("url") != expected_url:
            problems.append(
                f"exposure {exposure['name']} has url {exposure.get('url')}, expected {expected_url}"
            )
    return problems
