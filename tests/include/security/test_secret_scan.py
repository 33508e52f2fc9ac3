"""No secret in the repository: the scanner finds planted credentials, and the tracked tree has none.

The planted secrets are assembled at run time (``"AK" + "IA..."``) so this file itself stays clean.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from include.security.secret_scan import main, scan_repository, scan_text

# (file name, line) -> must be found. Each value is made up, in the shape of the real thing.
PLANTED = [
    ("deploy/key.pem", "-----BEGIN " + "RSA PRIVATE KEY-----"),
    ("deploy/id_ed25519", "-----BEGIN " + "OPENSSH PRIVATE KEY-----"),
    ("include/aws.py", 'ACCESS = "' + "AK" + 'IAZ7QWERTYUIOPAS12"'),
    ("config/aws.ini", "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8xw3Lk2P"),
    ("include/maps.py", 'MAPS = "' + "AI" + 'zaSyD3kq9Xw-7bQ2mN4pL8rT1vY6uZ0cE5hJ2gF"'),
    ("gcp.json", '  "private_key_id": "' + "4f2a9c81d0b7e6a5f4c3b2a1908f7e6d5c4b3a21" + '",'),
    ("ci.yml", "  gh_token: " + "ghp" + "_R8dK2mQ9xL4vN7pT1sW6yB3cF5hJ0gZ8aE2u"),
    ("alerts.py", 'HOOK = "' + "xox" + 'b-2048593021-9f8e7d6c5b4a"'),
    (
        "auth.py",
        'JWT = "' + "ey" + "JhbGciOiJIUzI1NiJ9.ey" + 'JzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"',
    ),
    ("include/db.py", 'URL = "postgresql://c360:' + "Tr0ub4dor" + '&3@db.internal:5432/c360"'),
    ("README.md", "connect with `psql postgres://admin:" + "s3cr3t-Pa55" + "@10.0.0.5/c360`"),
    ("include/settings.py", 'connect(host="db", password="' + "hunter2hunter2" + '")'),
    ("include/settings.py", 'DB_PASSWORD: str = "' + "Sup3rS3cret!" + '"'),
    (".env", "C360_DB_PASSWORD=" + "Xk29fjsL0q"),
    (".env", "export C360_SANDBOX_TOKEN=" + "9rMuIjMHAgowilRQ_cn"),
    (".env.production", "C360_PII_SALT=" + "961e4995f2db2d3008ca304b932e5a4e"),
    ("docker-compose.yaml", "      POSTGRES_PASSWORD: " + "postgres123"),
    ("airflow.cfg", "secret_key = " + "a8f5f167f44f4964e6c998dee827110c"),
    ("conn.json", '{"login": "c360", "password": "' + "letmein2026" + '"}'),
    ("client.py", 'client_secret = "' + "Q2xpZW50U2VjcmV0" + '"'),
    ("client.py", 'headers = {"Authorization": "Bearer ' + "abcDEF123456ghiJKL789" + '"}'),
    ("client.py", 'signing_key = "' + "q8Zr4Lp1Xw7Mn2Bv5Cx9Kj3Hg6Fd0Sa" + '"'),
]

# Lines that look secret-ish but hold no secret: references, placeholders, names, code.
CLEAN = [
    (".env.example", "C360_DB_PASSWORD=changeme"),
    (".env.example", "C360_SANDBOX_TOKEN="),
    (
        ".env.example",
        "C360_SANDBOX_TOKEN=<make one: python -c 'import secrets; print(secrets.token_urlsafe())'>",
    ),
    (
        "docker-compose.yaml",
        "  C360_WAREHOUSE_URL: postgresql://c360:${C360_DB_PASSWORD}@warehouse:5432/c360",
    ),
    ("docker-compose.yaml", "      AIRFLOW_CONN_C360_CRM_API: http://:${C360_SANDBOX_TOKEN}@sandbox:8765"),
    ("docker-compose.yaml", "      POSTGRES_PASSWORD: ${C360_DB_PASSWORD}"),
    ("dbt_project/profiles.yml", "      password: \"{{ env_var('C360_WH_PASSWORD', '') }}\""),
    ("README.md", "| `C360_WAREHOUSE_URL` | warehouse, e.g. `postgresql://user:pw@host:5432/c360` |"),
    ("README.md", "| `warehouse` | `psql postgresql://c360:…@127.0.0.1:5433/c360` |"),
    ("include/compose_checks.py", "#: host:port in a URL, e.g. ``postgresql://u:p@warehouse:5432/c360``."),
    ("include/cli.py", "    token = sandbox_token()"),
    ("include/cli.py", '                    "password": token,'),
    ("include/cli.py", '        "C360_WH_PASSWORD": wh.password,'),
    ("include/http.py", '        headers["Authorization"] = f"Bearer {token}"'),
    ("include/server.py", 'TOKEN_ENV = "C360_SANDBOX_TOKEN"'),
    ("include/server.py", '    PII_SALT_ENV = "C360_PII_SALT"'),
    ("include/runner.py", "    def as_token(self) -> dict[str, str | None]:"),
    ("include/runner.py", "    token: dict[str, Any] | None = None"),
    ("include/runner.py", '        f"select resume_token from ops.extract_checkpoints where run_id = %s"'),
    ("include/writers.py", '            idempotency_key=f"c360:{flow.name}:{t}:{i}",'),
    ("include/writers.py", '    customer_key = "C0000001"'),
    ("include/writers.py", '    record_key = "001AbCdEfGhIjKl"'),
    ("include/config.py", '    expected postgresql://user:password@host:port/dbname"'),
    ("include/config.py", '    auth = self.user + (f":{self.password}" if self.password else "")'),
    ("tests/conftest.py", 'TOKEN = "test-token"'),
    ("dags/x.py", '    raise PermissionError("refused the token (401): check the password of connection")'),
    ("include/engine.py", "    resume_token jsonb not null,"),
    ("include/config.py", '    return Path(os.environ.get("C360_PII_SALT", ""))'),
    ("Makefile", "\tC360_PII_SALT=$(SALT) $(PY) -m include.cli demo"),
]


@pytest.mark.parametrize(("path", "line"), PLANTED)
def test_a_planted_secret_is_found(path: str, line: str) -> None:
    findings = scan_text(f"# header\n{line}\n", path)
    assert [f.line for f in findings] == [2], (path, line, findings)
    # the report never repeats the secret in full
    secret = line.split("=", 1)[-1].strip().strip("\"'")
    if len(secret) > 8:
        assert secret not in str(findings[0])


@pytest.mark.parametrize(("path", "line"), CLEAN)
def test_placeholders_references_and_code_are_not_findings(path: str, line: str) -> None:
    assert scan_text(line, path) == []


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_the_scan_covers_tracked_files_and_fails_the_command(tmp_path: Path, capsys) -> None:
    """In a repository: a committed secret fails ``main``; an ignored local secrets file does not."""
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".data/\n")
    (tmp_path / "app.py").write_text('DB_URL = "postgresql://app:' + "Pr0dPassw0rd" + '@db/app"\n')
    (tmp_path / ".data").mkdir()
    (tmp_path / ".data" / "token").write_text("export C360_SANDBOX_TOKEN=" + "9rMuIjMHAgowilRQ_cn\n")
    _git(tmp_path, "add", "-A")
    findings = scan_repository(tmp_path)
    assert [(f.path, f.line, f.kind) for f in findings] == [("app.py", 1, "password in a URL")]
    assert main([str(tmp_path)]) == 1
    assert "app.py:1: password in a URL" in capsys.readouterr().out
    (tmp_path / "app.py").write_text('DB_URL = os.environ["C360_WAREHOUSE_URL"]\n')
    assert main([str(tmp_path)]) == 0


def test_the_repository_holds_no_secret() -> None:
    findings = scan_repository()
    assert findings == [], "credential-looking values in tracked files:\n" + "\n".join(map(str, findings))
