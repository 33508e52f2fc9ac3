"""The identity benchmark's memory sampler: PostgreSQL backends' private memory, or "not readable".

dbt opens and closes a connection per node, so a sample can list backends that exit before their
/proc status is read. That must not turn the whole run's figure into "not readable"; only a server
whose backends can never be read (another host, another namespace) is.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from benchmarks import identity
from include.config import PgUrl


def sample_while_connected(db: PgUrl, samples: int = 5) -> identity.BackendSampler:
    sampler = identity.BackendSampler(db, interval=0.05)
    with psycopg.connect(db.url) as conn:
        conn.execute("select 1")
        sampler.start()
        deadline = time.monotonic() + 10
        while sampler.samples < samples and time.monotonic() < deadline:
            time.sleep(0.02)
        sampler.stop()
    return sampler


def test_backends_that_exit_before_one_sample_reads_them_leave_the_figure_readable(
    fresh_db: PgUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = identity._rss_kb
    calls = {"n": 0}

    def first_sample_misses(pid: int) -> dict[str, int]:
        calls["n"] += 1
        return {} if calls["n"] == 1 else real(pid)

    monkeypatch.setattr(identity, "_rss_kb", first_sample_misses)
    sampler = sample_while_connected(fresh_db)
    if sampler.peak_kb == 0:
        pytest.skip("this PostgreSQL's backends are not readable from here (another host or namespace)")
    assert sampler.readable
    assert sampler.peak_backends >= 1


def test_backends_never_readable_give_no_figure(fresh_db: PgUrl, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "_rss_kb", lambda pid: {})
    sampler = sample_while_connected(fresh_db)
    assert sampler.samples >= 1
    assert not sampler.readable
    assert sampler.peak_kb == 0
