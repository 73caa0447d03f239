"""A real SMTP server (aiosmtpd) on this machine, and the operator settings that point at it.

Ports are chosen once per test session. The operator reaches this machine at
127.0.0.1 as a process, at the real node's bridge address as a pod
(`OperatorProcess.host_address`).
"""

from __future__ import annotations

import email
import threading
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.e2e.harness import DEFAULT_OPERATOR_ENV, free_port

SMTP_PORT = free_port()
METRICS_PORT = free_port()
METRICS_ENV = {
    "CLONE_OPERATOR_METRICS_PORT": str(METRICS_PORT),
    "CLONE_OPERATOR_METRICS_HOST": "127.0.0.1",
}
SMTP_ENV = {
    **DEFAULT_OPERATOR_ENV,
    **METRICS_ENV,
    "CLONE_OPERATOR_SMTP_HOST": "127.0.0.1",
    "CLONE_OPERATOR_SMTP_PORT": str(SMTP_PORT),
    "CLONE_OPERATOR_SMTP_SECURITY": "none",
    "CLONE_OPERATOR_SMTP_FROM": "Clone Operator <clone-operator@ops.example>",
    "CLONE_OPERATOR_SMTP_RETRY_SECONDS": "1",
    "CLONE_OPERATOR_SMTP_MAX_RETRY_SECONDS": "2",
    "CLONE_OPERATOR_SMTP_TIMEOUT_SECONDS": "20",
}


@dataclass
class Mailbox:
    """An aiosmtpd handler: records every accepted message; refuses listed recipients."""

    reject: set[str] = field(default_factory=set)
    data_delay: float = 0.0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.reject:
            return "550 5.1.1 mailbox unavailable: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), parsed))
        if self.data_delay:
            import asyncio

            await asyncio.sleep(self.data_delay)  # the message is here; the reply is not yet
        return "250 2.0.0 queued"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]

    def all(self) -> list[tuple[list[str], EmailMessage]]:
        with self.lock:
            return list(self.messages)


@dataclass
class SmtpServer:
    port: int
    host: str = "127.0.0.1"
    mailbox: Mailbox = field(default_factory=Mailbox)
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname=self.host, port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
