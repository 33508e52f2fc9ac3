"""Alerts reach a real webhook receiver and a real SMTP server once per state change."""

from __future__ import annotations

import psycopg
import pytest

from include.monitoring.alerts import Alert, report
from include.monitoring.settings import Monitoring
from tests.receivers import alert_connections, smtp_receiver, webhook_receiver


def settings(style: str = "wecom", endpoint: str = "cgi-bin/webhook/send?key=test") -> Monitoring:
    return Monitoring.model_validate(
        {
            "channels": [
                {
                    "name": "hook",
                    "kind": "webhook",
                    "conn_id": "c360_alert_webhook",
                    "endpoint": endpoint,
                    "style": style,
                    "min_severity": "warning",
                },
                {
                    "name": "mail",
                    "kind": "email",
                    "conn_id": "c360_alert_smtp",
                    "to": ["oncall@example.com"],
                    "min_severity": "critical",
                },
            ]
        }
    )


STALE = Alert(
    key="stale:source:crm",
    severity="warning",
    title="source:crm freshness",
    detail="crm: last successful extract 7.0 h ago (SLA 6 h)",
    link="http://127.0.0.1:8080/dags/push_flows/runs/r1/tasks/crm_golden_contacts.wait_for_source_crm?try_number=1",
)


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db.url) as conn:
        yield conn


@pytest.mark.parametrize(
    ("style", "shape"),
    [
        ("wecom", lambda b: b["msgtype"] == "markdown" and "content" in b["markdown"]),
        ("dingtalk", lambda b: b["msgtype"] == "markdown" and {"title", "text"} <= set(b["markdown"])),
        ("slack", lambda b: set(b) == {"text"}),
    ],
)
def test_each_webhook_style_reaches_the_receiver(conn, monkeypatch, style, shape):
    with webhook_receiver() as hook:
        alert_connections(monkeypatch, hook)
        only_webhook = settings(style).model_copy(update={"channels": settings(style).channels[:1]})
        assert report(conn, only_webhook, STALE, firing=True) == "firing"
    (body,) = hook.received
    assert shape(body)
    assert hook.paths == ["/cgi-bin/webhook/send?key=test"]
    (text,) = hook.texts()
    assert "[c360 ALERT WARNING] source:crm freshness" in text
    assert "7.0 h ago" in text
    assert STALE.link in text


def test_one_message_per_state_change_with_escalation_and_recovery(conn, monkeypatch):
    with webhook_receiver() as hook, smtp_receiver() as mailbox:
        alert_connections(monkeypatch, hook, mailbox)
        cfg = settings()
        transitions = [report(conn, cfg, STALE, firing=True) for _ in range(3)]
        critical = Alert(**{**STALE.__dict__, "severity": "critical", "detail": "crm: 25 h ago (error 24 h)"})
        transitions += [report(conn, cfg, critical, firing=True), report(conn, cfg, critical, firing=True)]
        # a lower severity while critical is no news either
        transitions.append(report(conn, cfg, STALE, firing=True))
        good = Alert(**{**STALE.__dict__, "detail": "crm: last successful extract 0.1 h ago"})
        transitions += [report(conn, cfg, good, firing=False), report(conn, cfg, good, firing=False)]

    assert transitions == ["firing", None, None, "escalated", None, None, "recovered", None]
    texts = hook.texts()
    assert len(texts) == 3
    assert texts[0].startswith("**[c360 ALERT WARNING]")
    assert texts[1].startswith("**[c360 ESCALATED CRITICAL]")
    assert texts[2].startswith("**[c360 RECOVERED]") and "Back to normal after" in texts[2]
    # email only from critical on: the escalation, then the recovery (sent where the problem went)
    subjects = [m["Subject"] for m in mailbox.messages]
    assert subjects == [
        "[c360 ESCALATED CRITICAL] source:crm freshness",
        "[c360 RECOVERED] source:crm freshness",
    ]
    assert mailbox.recipients == [["oncall@example.com"], ["oncall@example.com"]]
    html = mailbox.messages[0].get_payload()[0].get_payload(decode=True).decode()
    assert "25 h ago" in html and 'href="http://127.0.0.1:8080/dags/push_flows/runs/r1' in html
    logged = conn.execute(
        "select transition, channel, delivered from monitoring.alert_log order by sent_at, channel"
    ).fetchall()
    assert logged == [
        ("firing", "hook", True),
        ("escalated", "hook", True),
        ("escalated", "mail", True),
        ("recovered", "hook", True),
        ("recovered", "mail", True),
    ]
    assert conn.execute("select status from monitoring.alert_state").fetchall() == [("ok",)]


def test_an_undelivered_alert_is_tried_again_by_the_next_check(conn, monkeypatch):
    only_webhook = settings().model_copy(update={"channels": settings().channels[:1]})
    with webhook_receiver() as hook:
        alert_connections(monkeypatch, hook)
        hook.fail = True
        assert report(conn, only_webhook, STALE, firing=True) is None
        hook.fail = False
        hook.answer = {"errcode": 93000, "errmsg": "invalid webhook url"}  # WeCom refuses with HTTP 200
        assert report(conn, only_webhook, STALE, firing=True) is None
        hook.answer = None
        assert report(conn, only_webhook, STALE, firing=True) == "firing"
    assert len(hook.received) == 2  # the refused one and the delivered one
    errors = [
        r[0] for r in conn.execute("select error from monitoring.alert_log order by sent_at").fetchall()
    ]
    assert "500" in errors[0]
    assert "93000" in errors[1]
    assert errors[2] is None
