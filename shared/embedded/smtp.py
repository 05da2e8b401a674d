"""A capturing SMTP server (aiosmtpd): every message received is kept for inspection."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message

from shared.embedded.ports import free_port


@dataclass(frozen=True)
class CapturedMail:
    sender: str
    recipients: tuple[str, ...]
    message: Message


class _Capture:
    def __init__(self) -> None:
        self.messages: list[CapturedMail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        mail = CapturedMail(
            envelope.mail_from, tuple(envelope.rcpt_tos), message_from_bytes(envelope.content)
        )
        with self.lock:
            self.messages.append(mail)
        return "250 Message accepted for delivery"


class EmbeddedSMTP:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._capture = _Capture()
        self._controller = None

    @property
    def messages(self) -> list[CapturedMail]:
        with self._capture.lock:
            return list(self._capture.messages)

    def start(self) -> tuple[str, int]:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self._capture, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return "127.0.0.1", self.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
