"""SMTP servers that misbehave on cue, over the wire: aiosmtpd scripted per recipient, and a
listener that accepts connections and never says a word."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import defaultdict
from collections.abc import Sequence
from email import message_from_bytes

from shared.embedded.ports import free_port
from shared.embedded.smtp import CapturedMail

# What the server does with a mail, by recipient, attempt after attempt (the last one repeats):
#   "ok"     accept (250) and keep it
#   "451", "452", "421", "550", "554"   answer that code to DATA
#   "close"  read the whole message, then drop the connection without a reply
#   "hang"   read the whole message, then say nothing for HANG_S
HANG_S = 30.0


class _Script:
    def __init__(self, plan: dict[str, Sequence[str]]) -> None:
        self.plan = plan
        self.attempts: dict[str, int] = defaultdict(int)
        self.accepted: list[CapturedMail] = []
        self.connections = 0
        self.lock = threading.Lock()

    def action(self, rcpt: str) -> str:
        with self.lock:
            n = self.attempts[rcpt]
            self.attempts[rcpt] += 1
        steps = self.plan.get(rcpt.split("@")[0], ("ok",))
        return steps[min(n, len(steps) - 1)]

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        action = self.action(envelope.rcpt_tos[0])
        if action == "close":
            server.transport.close()
            return "250 never seen"
        if action == "hang":
            await asyncio.sleep(HANG_S)
            return "250 too late"
        if action != "ok":
            return f"{action} scripted reply for {envelope.rcpt_tos[0]}"
        mail = CapturedMail(
            envelope.mail_from, tuple(envelope.rcpt_tos), message_from_bytes(envelope.content)
        )
        with self.lock:
            self.accepted.append(mail)
        return "250 Message accepted for delivery"


class ScriptedSMTP:
    """aiosmtpd on 127.0.0.1 answering each recipient's mails as `plan` says (by local part)."""

    def __init__(self, plan: dict[str, Sequence[str]] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self._script = _Script(plan or {})
        self._controller = None

    @property
    def messages(self) -> list[CapturedMail]:
        with self._script.lock:
            return list(self._script.accepted)

    @property
    def connections(self) -> int:
        return self._script.connections

    def attempts(self, rcpt: str) -> int:
        return self._script.attempts[rcpt]

    def start(self) -> ScriptedSMTP:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self._script, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class SilentServer:
    """Accepts TCP connections and never sends a greeting: a hung SMTP server."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._held.append(conn)

    @property
    def accepted(self) -> int:
        return len(self._held)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()
