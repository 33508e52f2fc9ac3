"""What a person opens, in a real headless browser (Debian's chromium, driven by Playwright).

- the Airflow UI: sign in (SimpleAuthManager with a password file, as in docker-compose.yaml) and see
  every DAG of the pipeline;
- static pages the project generates, opened from disk: the dbt docs (a model page with its Chinese
  label) and, with one more ``Page`` line, any other generated page (e.g. the HTML dashboards).

Screenshots go to ``.data/screenshots/``. Airflow runs as ``airflow api-server`` alone (no scheduler)
on the metadata database ``make test`` has migrated, after ``airflow dags reserialize``; the pages are
built meanwhile. Without a browser the tests fail with a hint (``make test`` installs chromium when
run as root); ``C360_SKIP_BROWSER=1`` skips them on purpose.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from include.config import DBT_PROJECT_DIR, PROJECT_ROOT, data_dir
from include.registry import load_sources

BIN = Path(sys.executable).parent
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = data_dir() / "screenshots"
WORK = data_dir() / "browser_test"
#: every DAG a person must find in the Airflow UI
EXPECTED_DAGS = [
    *(f"extract_{s.name}" for s in load_sources()),
    "dbt_customer_360",
    "push_flows",
    "refresh_bi",
    "monitor_freshness",
]


def _label_zh(model: str) -> str:
    for path in (DBT_PROJECT_DIR / "models").rglob("*.yml"):
        for m in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            if m["name"] == model:
                return (m.get("config", {}).get("meta") or m.get("meta") or {})["label_zh"]
    raise LookupError(model)


@dataclass(frozen=True)
class Page:
    """A generated page: the command that writes it, the file, the texts a person must see on it."""

    name: str
    build: tuple[str, ...]
    path: Path
    expect: tuple[str, ...]
    fragment: str = ""


DOCS = WORK / "dbt_docs"
PAGES = [
    Page(
        "dbt_docs_dim_customer",
        (str(BIN / "dbt"), "docs", "generate", "--project-dir", str(DBT_PROJECT_DIR), "--static")
        + ("--empty-catalog", "--target-path", str(DOCS), "--quiet"),
        DOCS / "static_index.html",
        ("dim_customer", _label_zh("dim_customer"), "customer_key"),
        "#!/model/model.customer_360.dim_customer",
    ),
    # the HTML dashboards, once `python -m include.cli dashboards` exists, are one more line:
    # Page("dashboards", (sys.executable, "-m", "include.cli", "dashboards"),
    #      data_dir() / "dashboards" / "index.html", ("<a title the dashboard shows>",)),
]


def chromium_path() -> str | None:
    return next(filter(None, (shutil.which(name) for name in CHROMIUM_CANDIDATES)), None)


@pytest.fixture(scope="module")
def browser():
    if os.environ.get("C360_SKIP_BROWSER") == "1":
        pytest.skip("C360_SKIP_BROWSER=1: browser tests skipped on purpose")
    executable = chromium_path()
    if executable is None:
        pytest.fail(
            "No chromium found for the browser tests. `make test` installs Debian's chromium when run as "
            "root (apt-get install chromium chromium-driver); install it, or set C360_SKIP_BROWSER=1 to "
            "skip these tests on purpose."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make test` installs requirements.txt")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class AirflowUI:
    url: str
    user: str
    password: str


@pytest.fixture(scope="module")
def stack() -> Iterator[AirflowUI]:
    """Pages built in the background while the DAGs are serialized, then the api-server alone."""
    WORK.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    builds = {
        page.name: subprocess.Popen(
            page.build, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for page in PAGES
    }
    subprocess.run(
        [str(BIN / "airflow"), "dags", "reserialize"], cwd=PROJECT_ROOT, check=True, capture_output=True
    )
    timings["reserialize"] = time.monotonic() - t0
    user, password = "c360-browser-test", secrets.token_urlsafe(16)
    passwords = WORK / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({user: password}))
    port = _free_port()
    env = dict(
        os.environ,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{user}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
    )
    log = open(WORK / "api-server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen(
        [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"airflow api-server did not come up; see {WORK / 'api-server.log'}")
            time.sleep(0.5)
        timings["api-server up"] = time.monotonic() - t0
        for name, proc in builds.items():
            output, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                pytest.fail(f"building page {name} failed:\n{output[-3000:]}")
        timings["pages built"] = time.monotonic() - t0
        print("browser test set-up (s from start):", {k: round(v, 1) for k, v in timings.items()})
        yield AirflowUI(url, user, password)
    finally:
        _stop(server)
        log.close()
        for proc in builds.values():
            if proc.poll() is None:
                proc.kill()


def _screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_airflow_ui_sign_in_and_every_dag_listed(browser, stack):
    # tall enough for the whole DAG list in the screenshot (the list scrolls inside the page)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(f"{stack.url}/dags")
    page.wait_for_selector("input[name=username]", timeout=60_000)  # not signed in: the login form
    _screenshot(page, "airflow_login")
    page.fill("input[name=username]", stack.user)
    page.fill("input[name=password]", stack.password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{stack.url}/dags*", timeout=60_000)
    for dag_id in EXPECTED_DAGS:
        page.get_by_text(dag_id, exact=True).first.wait_for(timeout=60_000)
    shot = _screenshot(page, "airflow_dags")
    body = page.inner_text("body")
    missing = [d for d in EXPECTED_DAGS if d not in body]
    assert not missing, f"DAGs not shown in the Airflow UI: {missing} (screenshot {shot})"
    assert "Import Errors" not in body and "Dag Import Errors" not in body, f"import errors shown ({shot})"
    page.close()


def test_airflow_ui_refuses_a_wrong_password(browser, stack):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{stack.url}/dags")
    page.wait_for_selector("input[name=username]", timeout=60_000)
    page.fill("input[name=username]", stack.user)
    page.fill("input[name=password]", stack.password + "-wrong")
    with page.expect_response(lambda r: r.request.method == "POST", timeout=60_000) as login:
        page.keyboard.press("Enter")
    assert login.value.status in (401, 403), f"login with a wrong password answered {login.value.status}"
    assert page.locator("input[name=password]").count() == 1, "a wrong password got past the login form"
    assert "push_flows" not in page.inner_text("body")
    page.close()


@pytest.mark.parametrize("spec", PAGES, ids=[p.name for p in PAGES])
def test_generated_page_shows_its_content(browser, stack, spec: Page):
    assert spec.path.exists(), f"{spec.name}: {' '.join(spec.build)} did not write {spec.path}"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(spec.path.as_uri() + spec.fragment)
    for text in spec.expect:  # rendered text, not hidden navigation that happens to contain it
        page.wait_for_function("t => document.body.innerText.includes(t)", arg=text, timeout=60_000)
    shot = _screenshot(page, spec.name)
    body = page.inner_text("body")
    assert all(text in body for text in spec.expect), f"{spec.name}: expected {spec.expect} ({shot})"
    page.close()
