"""Import the bundle (deploy/superset/bundle) into Superset, the warehouse password from the environment.

The bundle has the layout of Superset's own export (metadata.yaml, databases/, datasets/, charts/,
dashboards/). Its database URI carries Superset's password mask, never a password: the read-only
bi_reader login's password (``C360_BI_READER_PASSWORD``) is put in at import time, into a zip that
exists only in a temporary folder, then ``superset import-dashboards`` imports it (overwriting what
an earlier import made, so editing a file and re-running superset-init updates the dashboards).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

PASSWORD_ENV = "C360_BI_READER_PASSWORD"


def with_password(uri: str, password: str) -> str:
    return make_url(uri).set(password=password).render_as_string(hide_password=False)


def write_bundle_zip(bundle: Path, out: Path, password: str) -> Path:
    """The bundle's YAML files under one top folder (as the importer expects), passwords filled in."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(bundle.rglob("*.yaml")):
            rel = path.relative_to(bundle)
            text = path.read_text(encoding="utf-8")
            if rel.parts[0] == "databases":
                config = yaml.safe_load(text)
                config["sqlalchemy_uri"] = with_password(config["sqlalchemy_uri"], password)
                text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
            zf.writestr(f"c360_bundle/{rel.as_posix()}", text)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--username", required=True, help="Superset user the imported objects belong to")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        print(f"error: {PASSWORD_ENV} is not set (the warehouse's bi_reader password; see .env.example)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        bundle_zip = write_bundle_zip(args.bundle, Path(tmp) / "c360_bundle.zip", password)
        cmd = ["superset", "import-dashboards", "--path", str(bundle_zip), "--username", args.username]
        return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
