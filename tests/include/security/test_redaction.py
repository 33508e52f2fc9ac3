"""Connection URLs shown to people (set-up lines, the demo summary, errors) never carry the password."""

from __future__ import annotations

import pytest

from include.config import PgUrl, redact_url

HIDDEN = "S3cr%40t-pw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://c360:{HIDDEN}@db:5432/c360", "postgresql://c360:***@db:5432/c360"),
        (f"postgres://c360:{HIDDEN}@db/c360?sslmode=require", "postgres://c360:***@db/c360?sslmode=require"),
        ("postgresql://postgres@127.0.0.1:5432/h5_main", "postgresql://postgres@127.0.0.1:5432/h5_main"),
        ("postgresql:///c360", "postgresql:///c360"),
    ],
)
def test_redact_url_masks_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_wrong_url_error_does_not_echo_the_password() -> None:
    with pytest.raises(ValueError, match="is not a PostgreSQL URL") as refused:
        PgUrl.parse(f"mysql://c360:{HIDDEN}@db/c360")
    assert HIDDEN not in str(refused.value) and "c360:***@db" in str(refused.value)
