"""docker-compose.yaml and the Superset provisioning, checked by parsing (no Docker engine runs here).

Each check runs on the real files (no problem may be found) and on a copy broken the way compose
files break in practice (the problem must be found), so none of them passes by construction.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from include import compose_checks as cc
from include.config import DBT_PROJECT_DIR, PROJECT_ROOT
from include.registry import load_sources

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
BUNDLE = PROJECT_ROOT / "deploy" / "superset" / "bundle"


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture
def compose(text) -> dict:
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def defaults(text) -> dict:
    return cc.variables(text)


def _dbt_yml(folder: str) -> list[dict]:
    return [
        yaml.safe_load(p.read_text(encoding="utf-8")) or {} for p in (DBT_PROJECT_DIR / folder).rglob("*.yml")
    ]


@pytest.fixture(scope="module")
def marts() -> dict[str, dict[str, str]]:
    """Mart name -> {column: Chinese label}, from the marts' yml (the bi views have the same columns)."""
    out = {}
    for doc in _dbt_yml("models/marts"):
        for model in doc.get("models", []):
            out[model["name"]] = {
                c["name"]: (c.get("meta") or c.get("config", {}).get("meta") or {}).get("label_zh")
                for c in model.get("columns", [])
            }
    return out


@pytest.fixture(scope="module")
def exposures() -> list[dict]:
    return [e for doc in _dbt_yml("models") for e in doc.get("exposures", [])]


# --- the real files ---------------------------------------------------------------------------------


def test_services_of_the_full_stack(compose):
    expected = {
        "airflow-db",
        "warehouse",
        "redis",
        "sandbox",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "superset",
        "superset-init",
    }
    assert set(compose["services"]) == expected


def test_every_service_has_an_image_or_a_build(compose):
    assert cc.check_images(compose, PROJECT_ROOT) == []


def test_every_variable_is_documented_in_env_example(text):
    assert cc.check_variables_documented(text, cc.env_example(PROJECT_ROOT / ".env.example")) == []


def test_ports_unique_loopback_and_consistent(compose, defaults):
    assert cc.check_ports(compose, defaults) == []
    # the app config behind the health-checked ports
    services = compose["services"]
    assert "--port 8765" in " ".join(services["sandbox"]["command"])
    assert "--port 8080" in (PROJECT_ROOT / "deploy" / "airflow" / "api-server.sh").read_text()
    assert services["superset"]["environment"]["SUPERSET_PORT"] == str(cc.health_port(services["superset"]))
    assert cc.health_port(services["airflow-scheduler"]) == 8974  # Airflow's scheduler health server


def test_named_volumes_declared_and_used(compose):
    assert cc.check_volumes(compose, PROJECT_ROOT) == []


def test_depends_on_targets_exist_with_health_conditions(compose):
    assert cc.check_depends_on(compose) == []


def test_airflow_services_share_one_celery_config(compose, defaults):
    assert cc.check_airflow(compose, defaults) == []


def test_airflow_has_every_connection_the_code_uses(compose):
    from include.push.targets import load_targets

    needed = {"c360_warehouse", "c360_events"} | {s.conn_id for s in load_sources() if s.conn_id}
    needed |= {t.conn_id for t in load_targets().targets}
    assert needed <= cc.airflow_connection_ids(compose)


def test_the_image_installs_the_celery_provider():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install .*-r requirements\.txt", dockerfile)
    requirements = (PROJECT_ROOT / "requirements.txt").read_text()
    assert re.search(r"^apache-airflow-providers-celery==", requirements, re.M)


def test_no_secret_is_written_into_the_compose_file(text):
    for line in text.splitlines():
        secret_key = re.search(r"^\s*\w*(PASSWORD|TOKEN|SECRET|SALT|KEY)\s*:\s*\S", line)
        url_password = re.search(r"://[^/@\s]*:([^@/\s]+)@", line)
        if secret_key and "${" not in line:
            raise AssertionError(f"literal secret in docker-compose.yaml: {line.strip()}")
        if url_password and not url_password.group(1).startswith("${"):
            raise AssertionError(f"literal password in a URL of docker-compose.yaml: {line.strip()}")


def test_secrets_and_the_image_context_stay_out_of_git_and_the_image():
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".data", ".git"} <= set(ignored)


def test_superset_provisioning_files_exist_and_parse(compose, marts, defaults):
    superset = compose["services"]["superset-init"]
    context = PROJECT_ROOT / superset["build"]["context"]
    init_script = context / "superset-init.sh"
    assert superset["command"] == ["/app/c360/superset-init.sh"]
    assert "/app/c360/provision.py /app/c360/bundle" in init_script.read_text()
    warehouse_db = compose["services"]["warehouse"]["environment"]["POSTGRES_DB"]
    assert cc.check_superset_bundle(BUNDLE, marts, warehouse_db) == []
    bundle = cc.load_bundle(BUNDLE)
    assert len(bundle["dashboards"]) >= 2 and len(bundle["charts"]) >= 8
    tables = {d["table_name"] for d in bundle["datasets"].values()}
    assert {"customer_360", "monthly_order_trends", "customer_alerts", "customer_churn_risk"} <= tables


def test_every_superset_dashboard_is_a_dbt_exposure(exposures, defaults):
    superset_port = int(defaults["SUPERSET_HOST_PORT"])
    assert cc.check_exposures(BUNDLE, exposures, superset_port) == []


def test_provision_puts_the_password_only_into_what_it_imports():
    """deploy/superset/provision.py: the bundle's masked URI gets the bi_reader password from the
    environment in memory, for the import; the files in the repo keep the mask."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("provision", PROJECT_ROOT / "deploy/superset/provision.py")
    provision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(provision)
    contents = provision.bundle_contents(BUNDLE, "s3cret-from-env")
    database = yaml.safe_load(contents["databases/c360_warehouse.yaml"])
    assert yaml.safe_load(contents["metadata.yaml"])["type"] == "assets"
    dashboards = [p for p in contents if p.startswith("dashboards/")]
    assert len(dashboards) == len(cc.load_bundle(BUNDLE)["dashboards"])
    assert database["sqlalchemy_uri"] == "postgresql+psycopg2://bi_reader:s3cret-from-env@warehouse:5432/c360"
    assert "XXXXXXXXXX" in (BUNDLE / "databases" / "c360_warehouse.yaml").read_text()


# --- broken copies: every check must notice -----------------------------------------------------------


CHECKS = {
    "images": lambda c, d: cc.check_images(c, PROJECT_ROOT),
    "volumes": lambda c, d: cc.check_volumes(c, PROJECT_ROOT),
    "depends_on": lambda c, d: cc.check_depends_on(c),
    "airflow": cc.check_airflow,
    "ports": cc.check_ports,
}

BROKEN_COMPOSE = {
    "image missing": ("images", lambda c: c["services"]["redis"].pop("image"), "neither an image"),
    "build context gone": (
        "images",
        lambda c: c["services"]["superset"]["build"].update(context="./deploy/nowhere"),
        "does not exist",
    ),
    "volume not declared": ("volumes", lambda c: c["volumes"].pop("warehouse-data"), "not declared"),
    "volume unused": (
        "volumes",
        lambda c: c["services"]["warehouse"].update(volumes=[]),
        "no service uses it",
    ),
    "depends on a missing service": (
        "depends_on",
        lambda c: c["services"]["superset"]["depends_on"].update(metabase={"condition": "service_healthy"}),
        "not a service",
    ),
    "waits for health without a health check": (
        "depends_on",
        lambda c: c["services"]["redis"].pop("healthcheck"),
        "no health check",
    ),
    "depends_on without condition": (
        "depends_on",
        lambda c: c["services"]["sandbox"].update(depends_on=["warehouse"]),
        "without conditions",
    ),
    "LocalExecutor": (
        "airflow",
        lambda c: c["x-airflow-common"]["environment"].update(AIRFLOW__CORE__EXECUTOR="LocalExecutor"),
        "not CeleryExecutor",
    ),
    "a worker off the common config": (
        "airflow",
        lambda c: c["services"]["airflow-worker"]["environment"].update(
            AIRFLOW__CELERY__BROKER_URL="redis://x:1/0"
        ),
        "does not share",
    ),
    "no triggerer": (
        "airflow",
        lambda c: c["services"].pop("airflow-triggerer"),
        "triggerer",
    ),
    "one worker": (
        "airflow",
        lambda c: c["services"]["airflow-worker"].pop("deploy"),
        "fewer than two",
    ),
    "duplicate host port": (
        "ports",
        lambda c: c["services"]["superset"].update(ports=["127.0.0.1:8765:8088"]),
        "published by both",
    ),
    "published on every interface": (
        "ports",
        lambda c: c["services"]["superset"].update(ports=["8088:8088"]),
        "not 127.0.0.1",
    ),
    "health check on another port": (
        "ports",
        lambda c: c["services"]["superset"].update(ports=["127.0.0.1:8088:8089"]),
        "health check probes",
    ),
    "connection to the wrong port": (
        "ports",
        lambda c: c["x-airflow-common"]["environment"].update(
            AIRFLOW_CONN_C360_OA_API="http://:t@sandbox:8000"
        ),
        "sandbox serves",
    ),
}


@pytest.mark.parametrize("case", BROKEN_COMPOSE)
def test_a_broken_compose_file_is_caught(compose, defaults, case):
    check_name, edit, expected = BROKEN_COMPOSE[case]
    check = CHECKS[check_name]
    assert check(compose, defaults) == [], "the real file passes"
    broken = copy.deepcopy(compose)
    edit(broken)
    problems = check(broken, defaults)
    assert any(expected in p for p in problems), problems


def test_a_worker_with_its_own_broker_is_caught_after_yaml_merge(text, defaults):
    """The merge keys (<<: *airflow-common) are resolved by the YAML loader: a service overriding a
    shared key is caught, the way `docker compose config` would show it."""
    broken = text.replace(
        '    command: ["airflow", "celery", "worker"]\n',
        '    command: ["airflow", "celery", "worker"]\n'
        "    environment:\n      <<: *airflow-common-env\n      AIRFLOW__CORE__EXECUTOR: LocalExecutor\n",
    )
    assert broken != text
    problems = cc.check_airflow(yaml.safe_load(broken), defaults)
    assert any("airflow-worker does not share" in p for p in problems), problems


def test_undocumented_and_secret_variables_are_caught(text):
    example = cc.env_example(PROJECT_ROOT / ".env.example")
    problems = cc.check_variables_documented(text + "\n# ${C360_NEW_SETTING}\n", example)
    assert "${C360_NEW_SETTING} is used but not listed in .env.example" in problems
    leaked = dict(example, AIRFLOW_ADMIN_PASSWORD="admin")
    assert any("AIRFLOW_ADMIN_PASSWORD" in p for p in cc.check_variables_documented(text, leaked))
    stale = dict(example, C360_GONE="1")
    assert any("C360_GONE" in p for p in cc.check_variables_documented(text, stale))


def _bundle_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(BUNDLE, tmp_path / "bundle"))


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


BROKEN_BUNDLE = {
    "a column renamed in the mart": (
        "datasets/c360_warehouse/bi_customer_alerts.yaml",
        lambda d: d["columns"][0].update(column_name="cust_key"),
        "differ from the mart",
    ),
    "a label that is not the mart's": (
        "datasets/c360_warehouse/bi_customer_360.yaml",
        lambda d: d["columns"][0].update(verbose_name="Key"),
        "is labelled",
    ),
    "a dataset on the marts schema": (
        "datasets/c360_warehouse/bi_customer_360.yaml",
        lambda d: d.update(schema="marts"),
        "bi views only",
    ),
    "a chart on a column the view lacks": (
        "charts/segments_pie.yaml",
        lambda d: d["params"].update(groupby=["segment_name"]),
        "segment_name",
    ),
    "a metric on a column the view lacks": (
        "charts/monthly_net_sales.yaml",
        lambda d: d["params"]["metrics"][0].update(sqlExpression="SUM(net_sales)"),
        "net_sales",
    ),
    "a time filter without its column": (
        "charts/monthly_customers.yaml",
        lambda d: d["params"]["adhoc_filters"][0].update(subject=None),
        "filter without a column",
    ),
    "a chart on a missing dataset": (
        "charts/alerts_list.yaml",
        lambda d: d.update(dataset_uuid="00000000-0000-0000-0000-000000000000"),
        "not in datasets/",
    ),
    "a password in the URI": (
        "databases/c360_warehouse.yaml",
        lambda d: d.update(sqlalchemy_uri="postgresql+psycopg2://bi_reader:hunter2@warehouse:5432/c360"),
        "carries a password",
    ),
    "the owner login instead of bi_reader": (
        "databases/c360_warehouse.yaml",
        lambda d: d.update(sqlalchemy_uri="postgresql+psycopg2://c360:XXXXXXXXXX@warehouse:5432/c360"),
        "bi_reader",
    ),
    "a dashboard chart without chartId": (
        "dashboards/customer_attention.yaml",
        lambda d: d["position"]["CHART-alerts_list"]["meta"].pop("chartId"),
        "chartId",
    ),
}


@pytest.mark.parametrize("case", BROKEN_BUNDLE)
def test_a_broken_superset_bundle_is_caught(tmp_path, marts, case):
    rel, edit, expected = BROKEN_BUNDLE[case]
    bundle = _bundle_copy(tmp_path)
    _edit_yaml(bundle / rel, edit)
    problems = cc.check_superset_bundle(bundle, marts, "c360")
    assert any(expected in p for p in problems), problems


def test_a_dashboard_without_its_exposure_or_with_other_marts_is_caught(tmp_path, exposures):
    bundle = _bundle_copy(tmp_path)
    _edit_yaml(
        bundle / "charts/alerts_total.yaml",
        lambda d: d.update(
            dataset_uuid=yaml.safe_load((bundle / "charts/customers_total.yaml").read_text())["dataset_uuid"]
        ),
    )
    problems = cc.check_exposures(bundle, exposures, 8088)
    assert any("superset_customer_attention depends on" in p and "customer_360" in p for p in problems), (
        problems
    )
    without = [e for e in exposures if e["name"] != "superset_customer_360_overview"]
    problems = cc.check_exposures(BUNDLE, without, 8088)
    assert any("customer_360_overview.yaml has no dbt exposure" in p for p in problems), problems
