"""Local alert receivers on loopback: a webhook (WeCom / DingTalk / Slack style) and an SMTP server.

They are real servers: alerts reach them through the HTTP and SMTP providers' hooks over TCP.
"""

from __future__ import annotations

import asyncore
import contextlib
import json
import smtpd  # deprecated in 3.11 but still the smallest real SMTP server in the standard library
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Webhook:
    url: str
    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    #: answer with this JSON instead of {"errcode": 0} (e.g. a refusal), or fail with HTTP 500
    answer: dict[str, Any] | None = None
    fail: bool = False

    def texts(self) -> list[str]:
        """The message text of every body received, whatever its style."""
        out = []
        for body in self.received:
            if "text" in body and isinstance(body["text"], str):
                out.append(body["text"])
            elif body.get("msgtype") == "markdown":
                md = body["markdown"]
                out.append(md.get("content") or md.get("text"))
        return out


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook(url="", port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if hook.fail:
                self.send_response(500)
                self.end_headers()
                return
            hook.received.append(body)
            hook.paths.append(self.path)
            answer = json.dumps(hook.answer or {"errcode": 0, "errmsg": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    hook.url = f"http://127.0.0.1:{hook.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Mailbox:
    port: int
    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)


@contextlib.contextmanager
def smtp_receiver() -> Iterator[Mailbox]:
    box = Mailbox(port=0)

    class Server(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):  # noqa: ANN001
            box.messages.append(message_from_bytes(data if isinstance(data, bytes) else data.encode()))
            box.recipients.append(list(rcpttos))

    server = Server(("127.0.0.1", 0), None, decode_data=False)
    box.port = server.socket.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.1, count=1, map=None)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def alert_connections(monkeypatch: Any, webhook: Webhook, mailbox: Mailbox | None = None) -> None:
    """Point the alert channels' Airflow connections (AIRFLOW_CONN_*) at the local receivers."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_C360_ALERT_WEBHOOK",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": webhook.port, "schema": "http"}),
    )
    if mailbox is not None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_C360_ALERT_SMTP",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": mailbox.port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "c360@example.com"},
                }
            ),
        )
