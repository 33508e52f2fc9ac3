"""Find credentials committed to the repository: the check behind "no secret in the repo".

Scans every git-tracked file (or any list of files) line by line for:

- private-key blocks (``-----BEGIN ... PRIVATE KEY-----``);
- cloud and SaaS key formats: AWS access key ids and secret keys, Google API keys and
  service-account JSON, GitHub, Slack and Stripe-style tokens, JWTs;
- URLs with a password in them (``postgresql://user:pw@host``);
- a literal value given to a secret-ish name (``password=...``, ``token: ...``, ``C360_PII_SALT=...``,
  ``"client_secret": "..."``), including bare values in env, YAML, INI and TOML files;
- ``Bearer <literal token>`` and high-entropy strings given to any ``*key`` name.

A value is fine when it is a reference, not a secret: an environment variable (``${C360_DB_PASSWORD}``,
``$TOKEN``, ``{{ env_var(...) }}``), a format field (``{password}``), a ``<placeholder>``, masked
(``***``), or one of the few placeholders in :data:`ALLOWED_VALUES` (``changeme`` in
``.env.example``, the fixed tokens of the test suite's throwaway sandboxes). Anything else is a
finding; the fix is to read it from the environment or a secrets backend, never to widen the list.

    python -m include.security.secret_scan          # exit 1 and one line per finding
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from include.config import PROJECT_ROOT

#: Literal values that are placeholders or fixed test fixtures, not credentials. Keep it short:
#: each entry is a value anyone may read.
ALLOWED_VALUES = frozenset(
    {
        "changeme",  # .env.example: replace before use
        "pw",  # README: postgresql://user:pw@host:5432/c360
        "password",
        "test-token",  # the test suite's throwaway sandbox servers
        "bench-token",  # the sync-back benchmark's throwaway sandbox server
        "test-salt",  # the dbt test fixture's resident-ID hash salt
        "s3cret-from-env",  # tests/test_deployment.py: rendered compose and BI settings
        "hunter2",  # tests/test_deployment.py: a password that must not be in the rendered settings
    }
)

#: Names whose value is a credential: the last word of the name decides (``db_password``,
#: ``C360_SANDBOX_TOKEN``, ``clientSecret``, ``C360_PII_SALT``).
_SECRET_NAME = (
    r"[A-Za-z0-9_.\-]*?(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|secret[_-]?key|auth[_-]?key|salt|credentials?)"
)
#: Any ``...key`` name: flagged only for a high-entropy value (``customer_key = "C0001"`` is data).
_KEY_NAME = r"[A-Za-z0-9_.\-]*?key"

_QUOTED_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_])(?P<name>" + _SECRET_NAME + r")[\"']?"
    r"\s*(?::\s*[A-Za-z_][\w\[\], |.]*?)?"  # an optional Python type annotation
    r"\s*(?:=|:|:=|=>)\s*[rbuf]{0,2}(?P<q>[\"'])(?P<value>(?:(?!(?P=q)).)*)(?P=q)",
    re.IGNORECASE,
)
_BARE_ASSIGNMENT = re.compile(
    r"^\s*(?:export\s+|-\s+)?(?P<name>" + _SECRET_NAME + r")\s*[:=]\s*(?P<value>[^\s#\"'][^\s#]*)",
    re.IGNORECASE,
)
_KEY_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_])(?P<name>" + _KEY_NAME + r")[\"']?\s*(?:=|:)\s*[rbuf]{0,2}"
    r"(?P<q>[\"'])(?P<value>[A-Za-z0-9+/=_\-]{24,})(?P=q)",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s/:@\"'`]*:(?P<value>[^\s/@\"'`]+)@", re.IGNORECASE)
_BEARER = re.compile(r"\bBearer\s+(?P<value>[A-Za-z0-9._~+/\-]{16,}=*)")

#: (kind, pattern) of formats that are a credential wherever they appear.
_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("AWS access key id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}(?![A-Z0-9])")),
    (
        "AWS secret access key",
        re.compile(r"aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}", re.IGNORECASE),
    ),
    ("Google API key", re.compile(r"AIza[0-9A-Za-z_\-]{35}")),
    ("GCP service-account key", re.compile(r"\"private_key_id\"\s*:\s*\"[0-9a-f]{20,}\"")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}")),
    ("Stripe-style live key", re.compile(r"\b(?:sk|rk)_live_[A-Za-z0-9]{16,}")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}")),
)
#: Files whose lines are ``NAME=value`` / ``name: value`` configuration (bare values count).
_CONFIG_FILE = re.compile(
    r"(^|/)(\.env[^/]*|[^/]*\.(env|ya?ml|ini|cfg|conf|toml|properties)|Dockerfile|Makefile)$"
)
#: A reference to a value kept elsewhere, or a template field: not a secret.
_REFERENCE = re.compile(
    r"^(\$\{[^}]*\}|\$\(?[A-Za-z_][A-Za-z0-9_]*\)?|\{\{.*\}\}|\{[^{}]*\}|%\([a-z_]+\)s|%s|<[^<>]+>|\*+|x+|\.\.\.|…)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str
    excerpt: str  # the line with the suspected secret masked

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.excerpt}"


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _is_placeholder(value: str) -> bool:
    value = value.strip()
    return (
        not value
        or value.lower() in ALLOWED_VALUES
        or bool(_REFERENCE.match(value))
        or value.startswith(("${", "{{", "<"))  # a bare value cut at its first space
        # a value assembled from references (``${USER}:${C360_DB_PASSWORD}``, ``{scheme}://{host}``)
        or (bool(re.search(r"\$\{|\{\{|\{[a-z_.]+\}", value)) and not re.search(r"[A-Za-z0-9]{12,}", value))
    )


def _mask(line: str, value: str) -> str:
    shown = value[:2] + "*" * max(3, len(value) - 2) if len(value) > 4 else "****"
    return line.strip().replace(value, shown)[:200]


def _looks_like_code_value(value: str, name: str) -> bool:
    """A literal that names something rather than holding a secret: an env var name, a header,
    a connection id, a file name, a SQL fragment."""
    return bool(
        re.fullmatch(r"[A-Z][A-Z0-9_]*", value)  # an environment variable's name: C360_SANDBOX_TOKEN
        or re.fullmatch(r"[a-z][a-z0-9]*(?:[_\-.][a-z0-9]+)*", value)
        and (value.count("_") + value.count("-") + value.count(".") >= 1 or len(value) < 8)
        # snake_case / kebab-case identifiers (c360_crm_api, resume_token, pii_salt.txt) and short words
        or " " in value  # prose: an error message, a help text, SQL
    )


def scan_text(text: str, path: str = "<text>") -> list[Finding]:
    """Findings in one file's text; ``path`` decides whether bare ``NAME=value`` lines count."""
    config_file = bool(_CONFIG_FILE.search(path))
    findings: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        found: list[Finding] = []  # one finding per line: the first rule that matched

        def add(kind: str, value: str, line: str = line, number: int = number, found=found) -> None:
            if not found:
                found.append(Finding(path, number, kind, _mask(line, value)))

        for kind, pattern in _FORMATS:
            match = pattern.search(line)
            if match:
                add(kind, match.group(0))
        for match in _URL_PASSWORD.finditer(line):
            # one or two characters (``u:p@host`` in a docstring) are a placeholder, not a password
            if len(match["value"]) > 2 and not _is_placeholder(match["value"]):
                add("password in a URL", match["value"])
        for match in _BEARER.finditer(line):
            if not _is_placeholder(match["value"]) and entropy(match["value"]) >= 3.0:
                add("literal bearer token", match["value"])
        for match in _QUOTED_ASSIGNMENT.finditer(line):
            value = match["value"]
            if _is_placeholder(value) or _looks_like_code_value(value, match["name"]):
                continue
            add(f"literal value for {match['name']}", value)
        if config_file:
            match = _BARE_ASSIGNMENT.match(line)
            if match and not _is_placeholder(match["value"]):
                add(f"literal value for {match['name']}", match["value"])
        for match in _KEY_ASSIGNMENT.finditer(line):
            value = match["value"]
            if entropy(value) >= 4.0 and not _is_placeholder(value):
                add(f"high-entropy value for {match['name']}", value)
        findings.extend(found)
    return findings


def tracked_files(root: Path = PROJECT_ROOT) -> list[Path]:
    """Every file git tracks under ``root`` (the working-tree copy: what would be committed)."""
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, text=True
    ).stdout
    return [root / name for name in out.split("\0") if name]


def scan_files(paths: Iterable[Path], root: Path = PROJECT_ROOT) -> Iterator[Finding]:
    for path in paths:
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        yield from scan_text(data.decode("utf-8", errors="replace"), rel)


def scan_repository(root: Path = PROJECT_ROOT) -> list[Finding]:
    return list(scan_files(tracked_files(root), root))


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else PROJECT_ROOT
    findings = scan_repository(root)
    for finding in findings:
        print(finding)
    if findings:
        print(
            f"{len(findings)} credential-looking value(s) in tracked files: move them to the environment "
            "or the secrets backend (and rotate them: they are in the git history)",
            file=sys.stderr,
        )
        return 1
    print("no credential-looking values in tracked files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
