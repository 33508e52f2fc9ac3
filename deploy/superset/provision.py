"""Import the bundle (deploy/superset/bundle) into Superset, the warehouse password from the environment.

The bundle has the layout of Superset's own export (metadata.yaml, databases/, datasets/, charts/,
dashboards/). Its database URI carries Superset's password mask, never a password: the read-only
bi_reader login's password (``C360_DB_PASSWORD_BI_READER``) is put in in memory, then Superset's
``ImportAssetsCommand`` (what its ``/api/v1/assets/import/`` endpoint runs) imports everything and
overwrites what an earlier import made. (``superset import-dashboards`` would not: it keeps existing
databases, datasets and charts, so a changed file or password would never arrive.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

PASSWORD_ENV = "C360_DB_PASSWORD_BI_READER"


def with_password(uri: str, password: str) -> str:
    return make_url(uri).set(password=password).render_as_string(hide_password=False)


def bundle_contents(bundle: Path, password: str) -> dict[str, str]:
    """The bundle's YAML files by path inside the bundle, the database passwords filled in."""
    contents = {}
    for path in sorted(bundle.rglob("*.yaml")):
        rel = path.relative_to(bundle).as_posix()
        text = path.read_text(encoding="utf-8")
        if rel.startswith("databases/"):
            config = yaml.safe_load(text)
            config["sqlalchemy_uri"] = with_password(config["sqlalchemy_uri"], password)
            text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
        contents[rel] = text
    return contents


def import_bundle(contents: dict[str, str], username: str) -> None:
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import security_manager
        from superset.commands.importers.v1.assets import ImportAssetsCommand
        from superset.utils.core import override_user

        user = security_manager.find_user(username=username)
        if user is None:
            raise SystemExit(f"error: no Superset user {username!r} (superset fab create-admin first)")
        with override_user(user):
            ImportAssetsCommand(contents).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--username", required=True, help="Superset user the imported objects belong to")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        print(f"error: {PASSWORD_ENV} is not set (the warehouse's bi_reader password; see .env.example)")
        return 2
    contents = bundle_contents(args.bundle, password)
    import_bundle(contents, args.username)
    kinds = {
        k: sum(1 for p in contents if p.startswith(f"{k}/")) for k in ("databases", "datasets", "charts")
    }
    dashboards = sum(1 for p in contents if p.startswith("dashboards/"))
    print(f"imported {kinds} and {dashboards} dashboards from {args.bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
