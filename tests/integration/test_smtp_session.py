"""shared.mail.smtp over the wire: TLS (STARTTLS and implicit) with verified certificates, one
connection for many mails, a dropped idle connection reopened, and the per-process rate limit."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from shared.embedded.ports import free_port
from shared.mail import smtp as smtp_module
from shared.mail.message import compose
from shared.mail.smtp import RateLimit, SmtpConfig, SmtpSession, SmtpUnavailable
from tests.integration.smtp_servers import ScriptedSMTP

FROM = "Team Plane <team@plane.example>"


def mail(to: str = "ada@example.com"):  # type: ignore[no-untyped-def]
    return compose(FROM, to, "Hello", "<p>Hi</p>")


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """A private CA the client trusts through SSL_CERT_FILE, as an operator would point it at one."""
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return authority


def server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


class Keep:
    def __init__(self) -> None:
        self.tls: list[bool] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.tls.append(session.ssl is not None)
        return "250 OK"


def test_starttls_is_used_and_the_certificate_verified(ca: trustme.CA) -> None:
    keep, port = Keep(), free_port()
    tls = {"tls_context": server_context(ca), "require_starttls": True}  # plain MAIL is refused
    controller = Controller(keep, hostname="127.0.0.1", port=port, server_kwargs=tls)
    controller.start()
    try:
        with SmtpSession(SmtpConfig("127.0.0.1", port, use_tls=True, from_address=FROM)) as session:
            session.send(mail())
    finally:
        controller.stop()
    assert keep.tls == [True]


def test_implicit_tls_works_and_an_untrusted_certificate_is_refused(ca: trustme.CA) -> None:
    keep, port = Keep(), free_port()
    controller = Controller(keep, hostname="127.0.0.1", port=port, ssl_context=server_context(ca))
    controller.start()
    try:
        with SmtpSession(SmtpConfig("127.0.0.1", port, use_tls=False, use_ssl=True, from_address=FROM)) as s:
            s.send(mail())
        stranger = trustme.CA()  # a certificate nobody here trusts
        port2 = free_port()
        other = Controller(Keep(), hostname="127.0.0.1", port=port2, ssl_context=server_context(stranger))
        other.start()
        try:
            session = SmtpSession(
                SmtpConfig("127.0.0.1", port2, use_tls=False, use_ssl=True, from_address=FROM)
            )
            with pytest.raises(SmtpUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                session.send(mail())
        finally:
            other.stop()
    finally:
        controller.stop()
    assert len(keep.tls) == 1, "the mail went over the trusted implicit-TLS server"


def test_one_connection_for_many_mails_and_a_dropped_idle_one_reopened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = ScriptedSMTP().start()
    try:
        session = SmtpSession(SmtpConfig("127.0.0.1", server.port, use_tls=False, from_address=FROM))
        for n in range(5):
            session.send(mail(f"user{n}@example.com"))
        assert server.connections == 1
        # The server forgets the client (as Postfix does after its idle timeout); the next send,
        # past the idle check, notices with NOOP and reconnects: the mail still goes, once.
        assert session._client is not None
        session._client.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        monkeypatch.setattr(smtp_module, "IDLE_CHECK_S", 0.0)
        session.send(mail("after@example.com"))
        session.close()
    finally:
        server.stop()
    assert server.connections == 2
    assert [m.recipients[0] for m in server.messages][-1] == "after@example.com"
    assert len(server.messages) == 6


def test_rate_limit_spaces_sends_after_a_one_second_burst() -> None:
    """A fake clock: the limiter's arithmetic, not the machine's speed, is under test."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limit = RateLimit(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(8):
        limit.wait()
    assert slept[:0] == [] and len(slept) == 4  # 4 at once, then one every 0.25 s
    assert all(abs(s - 0.25) < 1e-9 for s in slept) and abs(now[0] - 1.0) < 1e-9
    unlimited = RateLimit(0, clock=lambda: 0.0, sleep=lambda s: pytest.fail("slept"))
    for _ in range(100):
        unlimited.wait()
