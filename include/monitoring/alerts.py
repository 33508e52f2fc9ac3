"""Alerts: one message per state change (firing, escalated, recovered), to webhook and email channels.

Every alert has a stable key (``stale:source:crm``,
``task:push_flows.crm_golden_contacts.send_crm_accounts``,
``health:crm:crm_golden_contacts.crm_accounts:reject_backlog``). ``monitoring.alert_state`` holds
each key's current state; a check that keeps finding the same problem sends nothing new, a worse
severity sends an escalation, and the first good check after a problem sends the recovery message.
Deliveries are logged in ``monitoring.alert_log``. If no channel took a message, the state change
is not kept, so the next check tries again instead of the problem going unreported.

Channels go through the providers' hooks: the HTTP provider's ``HttpHook`` (WeCom / DingTalk /
Slack style JSON) and the SMTP provider's ``SmtpHook``, each on an Airflow connection named in
``monitoring.yaml``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import psycopg

from include.monitoring.settings import SEVERITY_RANK, Channel, Monitoring

log = logging.getLogger(__name__)

Transition = Literal["firing", "escalated", "recovered"]
HEALTH_VIEW_HINT = "select * from monitoring.pipeline_health"


@dataclass(frozen=True)
class Alert:
    key: str
    severity: str  # info | warning | critical
    title: str
    detail: str
    link: str | None = None


@dataclass(frozen=True)
class Message:
    alert: Alert
    transition: Transition
    since: datetime

    @property
    def headline(self) -> str:
        tag = {"firing": "ALERT", "escalated": "ESCALATED", "recovered": "RECOVERED"}[self.transition]
        level = "" if self.transition == "recovered" else f" {self.alert.severity.upper()}"
        return f"[c360 {tag}{level}] {self.alert.title}"

    def lines(self) -> list[str]:
        lines = [self.alert.detail]
        if self.transition == "recovered":
            minutes = (datetime.now(UTC) - self.since).total_seconds() / 60
            lines.append(f"Back to normal after {minutes:.0f} min.")
        else:
            lines.append(f"Since {self.since:%Y-%m-%d %H:%M UTC}. Health: {HEALTH_VIEW_HINT}")
        return lines


class ChannelNotConfigured(Exception):
    """The channel's Airflow connection is not defined here: the channel is skipped, not failed."""


class Sender(Protocol):
    def __call__(self, channel: Channel, message: Message) -> None: ...


# --- payloads ---------------------------------------------------------------------------------------


def webhook_payload(style: str, message: Message) -> dict[str, Any]:
    """The JSON body a WeCom / DingTalk group robot or a Slack incoming webhook expects."""
    link = message.alert.link
    if style == "slack":
        text = "\n".join([f"*{message.headline}*", *message.lines()])
        if link:
            text += f"\n<{link}|Airflow task log>"
        return {"text": text}
    body = "\n".join(f"> {line}" for line in message.lines())
    if link:
        body += f"\n\n[Airflow 任务日志 / task log]({link})"
    if style == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": f"**{message.headline}**\n{body}"}}
    if style == "dingtalk":
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.headline, "text": f"#### {message.headline}\n{body}"},
        }
    raise ValueError(f"unknown webhook style {style!r}: use wecom, dingtalk or slack")


def email_html(message: Message) -> str:
    from html import escape

    items = "".join(f"<p>{escape(line)}</p>" for line in message.lines())
    link = message.alert.link
    anchor = f'<p><a href="{escape(link)}">Airflow task log</a></p>' if link else ""
    return f"<h3>{escape(message.headline)}</h3>{items}{anchor}"


def send_via_hooks(channel: Channel, message: Message) -> None:
    """Deliver through the providers' hooks; raises when the receiver refuses the message."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(channel.conn_id)
    except AirflowNotFoundException as exc:
        raise ChannelNotConfigured(f"connection {channel.conn_id!r} is not defined") from exc
    if channel.kind == "webhook":
        from airflow.providers.http.hooks.http import HttpHook

        response = HttpHook(method="POST", http_conn_id=channel.conn_id).run(
            endpoint=channel.endpoint,
            json=webhook_payload(channel.style, message),
            headers={"Content-Type": "application/json"},
            extra_options={"timeout": 10},
        )
        # WeCom and DingTalk answer 200 with {"errcode": n} when they refuse a message
        if "json" in response.headers.get("Content-Type", ""):
            body = response.json()
            if isinstance(body, dict) and body.get("errcode", 0) != 0:
                raise RuntimeError(f"webhook {channel.name} refused the message: {body}")
        return
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=channel.conn_id) as smtp:
        smtp.send_email_smtp(to=channel.to, subject=message.headline, html_content=email_html(message))


# --- state ------------------------------------------------------------------------------------------


def _deliver(
    conn: psycopg.Connection, channels: list[Channel], message: Message, send: Sender
) -> tuple[list[str], int]:
    """Send to every channel; returns the channels that took it and how many were tried."""
    delivered, attempted = [], 0
    for channel in channels:
        error = None
        attempted += 1
        try:
            send(channel, message)
            delivered.append(channel.name)
        except ChannelNotConfigured as exc:
            attempted -= 1
            log.info("alert channel %s skipped: %s", channel.name, exc)
            continue
        except Exception as exc:  # a channel down must not stop the others
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("alert %s not delivered to %s: %s", message.alert.key, channel.name, error)
        conn.execute(
            "insert into monitoring.alert_log (alert_key, transition, severity, channel, delivered, error, "
            "message) values (%s, %s, %s, %s, %s, %s, %s)",
            (
                message.alert.key,
                message.transition,
                message.alert.severity,
                channel.name,
                error is None,
                error,
                "\n".join([message.headline, *message.lines()]),
            ),
        )
    return delivered, attempted


def _touch(conn: psycopg.Connection, key: str, now: datetime) -> None:
    conn.execute("update monitoring.alert_state set updated_at = %s where alert_key = %s", (now, key))


def gate_alert(verdict: Any, consumer: str, holding: str, link: str | None = None) -> Alert:
    """The ``stale:<upstream>`` alert of a freshness gate (``include.monitoring.freshness``):
    firing while the upstream is stale (``holding`` says what the consumer does meanwhile), and
    the recovery text once it is fresh."""
    detail = f"{verdict.detail}. " + (f"{consumer} goes on." if verdict.fresh else holding)
    return Alert(
        key=verdict.alert_key,
        severity=verdict.severity or "warning",
        title=f"{verdict.upstream} freshness",
        detail=detail,
        link=link,
    )


def report(
    conn: psycopg.Connection,
    settings: Monitoring,
    alert: Alert,
    firing: bool,
    send: Sender = send_via_hooks,
) -> Transition | None:
    """Record the alert's current state and notify on a change. Returns the transition sent, if any.

    ``firing=False`` is a good check: it only notifies when the key was firing (the recovery).
    """
    from include.monitoring.health import TABLES_DDL

    if not conn.execute("select to_regclass('monitoring.alert_log') is not null").fetchone()[0]:
        conn.execute(TABLES_DDL)
    conn.commit()
    now = datetime.now(UTC)
    with conn.transaction():
        # the row lock serialises concurrent checks of the same key (two sensors, a retry)
        conn.execute(
            "insert into monitoring.alert_state values (%s, 'ok', %s, %s, %s, %s) on conflict do nothing",
            (alert.key, alert.severity, alert.title, now, now),
        )
        status, severity, since, sent_to = conn.execute(
            "select status, severity, since, channels from monitoring.alert_state "
            "where alert_key = %s for update",
            (alert.key,),
        ).fetchone()
        transition: Transition | None = None
        if firing and status == "ok":
            transition = "firing"
        elif firing and SEVERITY_RANK[alert.severity] > SEVERITY_RANK[severity]:
            transition = "escalated"
        elif not firing and status == "firing":
            transition = "recovered"
        if transition is None:
            _touch(conn, alert.key, now)
            return None

        if transition == "recovered":
            # recovery goes wherever the problem was announced, whatever the good check's severity
            channels = [c for c in settings.channels if c.name in sent_to]
            message = Message(alert, transition, since)
        else:
            channels = [
                c for c in settings.channels if SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[c.min_severity]
            ]
            message = Message(alert, transition, now if transition == "firing" else since)
        delivered, attempted = _deliver(conn, channels, message, send)
        if attempted and not delivered:
            log.error("alert %s reached no channel; the next check will try again", alert.key)
            # keep the delivery log, not the state change
            _touch(conn, alert.key, now)
            return None
        if transition == "recovered":
            conn.execute(
                "update monitoring.alert_state set status = 'ok', since = %s, updated_at = %s, "
                "channels = '{}' where alert_key = %s",
                (now, now, alert.key),
            )
        else:
            conn.execute(
                "update monitoring.alert_state set status = 'firing', severity = %s, title = %s, since = %s, "
                "updated_at = %s, channels = %s where alert_key = %s",
                (
                    alert.severity,
                    alert.title,
                    message.since,
                    now,
                    sorted(set(sent_to) | set(delivered)),
                    alert.key,
                ),
            )
        return transition


def health_alert_key(check: dict[str, Any]) -> str:
    """Freshness checks share their key with the sensors' alerts, so a stale source is one alert
    whether a sensor or the health check saw it first."""
    if check["check_name"] == "last_success_age_h":
        return f"stale:source:{check['subject']}"
    if check["check_name"] == "mart_build_age_h":
        return f"stale:mart:{check['subject']}"
    return f"health:{check['system']}:{check['subject']}:{check['check_name']}"


def alert_on_health(
    conn: psycopg.Connection,
    settings: Monitoring,
    link: str | None = None,
    send: Sender = send_via_hooks,
) -> dict[str, Transition]:
    """Alert on every amber/red check of ``monitoring.pipeline_health_checks`` (anomalies, reject
    backlogs, SLA misses, failing data checks) and send recoveries for checks back to green."""
    from include.monitoring.health import health_checks

    sent: dict[str, Transition] = {}
    for check in health_checks(conn):
        firing = check["status"] != "green"
        limits = f"amber at {check['amber']}, red at {check['red']}"
        alert = Alert(
            key=health_alert_key(check),
            severity="critical" if check["status"] == "red" else "warning",
            title=f"{check['system']} {check['subject']} {check['check_name'].replace('_', ' ')}",
            detail=f"{check['status'].upper()}: {check['detail']} ({limits})"
            if firing
            else f"green again: {check['detail']}",
            link=link,
        )
        transition = report(conn, settings, alert, firing=firing, send=send)
        if transition:
            sent[alert.key] = transition
    return sent
