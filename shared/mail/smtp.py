"""One SMTP connection reused across mails, and what each kind of failure means to the caller.

SMTP has no idempotent submit, so the caller needs to know, for each mail, which of three things
happened when it was not accepted:

- `SmtpUnavailable`: the server never got the message (no connection, greeting or login failed,
  421 "closing", the connection lost before DATA). Nothing was handed over; send it later.
- `SmtpRefused`: the server answered no (MAIL, RCPT or DATA). `permanent` for 5xx: sending it
  again will not help; a 4xx (greylisting, mailbox full) may pass later.
- `SendUncertain`: the connection failed or timed out once the DATA command had started, before
  the server's final reply. The server may have taken the mail.

Every connect and command times out (Plane's Django backend had no timeout at all, so one hung
server stalled a worker for good).
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message

from shared.mail.message import Wire, as_wire, envelope
from shared.settings import Settings

# A connection idle this long is checked with NOOP before use: servers drop idle clients
# (Postfix after 300 s), and finding that out at MAIL would cost a reconnect anyway.
IDLE_CHECK_S = 30.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    user: str = ""
    password: str = field(default="", repr=False)
    use_tls: bool = True  # STARTTLS
    use_ssl: bool = False  # implicit TLS; wins when both are set (Django refuses that configuration)
    from_address: str = "Team Plane <team@mailer.plane.so>"
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        """The EMAIL_* environment settings alone (shared.mail.config also reads Plane's table)."""
        return cls(
            host=settings.email_host,
            port=settings.email_port,
            user=settings.email_host_user,
            password=settings.email_host_password,
            use_tls=settings.email_use_tls,
            use_ssl=settings.email_use_ssl,
            from_address=settings.email_from,
            timeout_s=settings.email_timeout_s,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class SmtpUnavailable(Exception):
    """Nothing was handed to the server; the mail can be sent later as it is."""


class SendUncertain(Exception):
    """The connection failed after DATA had started: the server may or may not have the mail."""


class SmtpRefused(Exception):
    def __init__(self, code: int, reply: str, stage: str) -> None:
        super().__init__(f"SMTP {stage} refused: {code} {reply}")
        self.code = code
        self.reply = reply
        self.stage = stage

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


def _reply(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:500]


class RateLimit:
    """At most `per_s` sends per second on average, with a burst of one second's worth."""

    def __init__(self, per_s: float, clock=time.monotonic, sleep=time.sleep) -> None:  # type: ignore[no-untyped-def]
        self.per_s = per_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = max(per_s, 1.0)
        self._last = clock()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self.per_s <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(max(self.per_s, 1.0), self._tokens + (now - self._last) * self.per_s)
            self._last = now
            if self._tokens < 1.0:
                self._sleep((1.0 - self._tokens) / self.per_s)
                self._tokens = 1.0
                self._last = self._clock()
            self._tokens -= 1.0


class SmtpSession:
    """Opened on first send, kept for the next ones, reopened after the server dropped it."""

    def __init__(self, config: SmtpConfig, rate: RateLimit | None = None) -> None:
        self.config = config
        self.rate = rate or RateLimit(0)
        self._client: smtplib.SMTP | None = None
        self._last_used = 0.0

    def connect(self) -> None:
        """Open the connection now (a no-op while one is open); SmtpUnavailable if it cannot."""
        if self._client is not None:
            return
        c = self.config
        if not c.host:
            raise SmtpUnavailable("EMAIL_HOST is not set")
        # Certificates and host names verified against the system's CAs (SSL_CERT_FILE points
        # elsewhere): smtplib's own default context checks nothing, so anyone on the path could
        # read the password and the sign-in codes.
        tls = ssl.create_default_context()
        try:
            if c.use_ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=tls)
            else:
                client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpUnavailable(f"SMTP {c.address}: cannot connect: {exc!r}") from exc
        try:
            client.ehlo_or_helo_if_needed()
            if c.use_tls and not c.use_ssl:
                client.starttls(context=tls)
                client.ehlo()
            if c.user:
                client.login(c.user, c.password)
        except smtplib.SMTPAuthenticationError as exc:
            _close(client)
            # The reply, never the password.
            raise SmtpUnavailable(f"SMTP {c.address}: login as {c.user!r} refused: {exc.smtp_code}") from exc
        except UnicodeEncodeError:
            _close(client)
            # smtplib's AUTH takes ASCII only (so did Plane's Django backend); never echo the value.
            raise SmtpUnavailable(
                f"SMTP {c.address}: EMAIL_HOST_USER or EMAIL_HOST_PASSWORD is not ASCII"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close(client)
            raise SmtpUnavailable(f"SMTP {c.address}: session setup failed: {exc!r}") from exc
        self._client = client
        self._last_used = time.monotonic()

    def send(self, message: Message | Wire) -> None:
        """Return once the server accepted `message`; raise one of the three errors otherwise."""
        mail = message if isinstance(message, Wire) else as_wire(message)
        self.rate.wait()
        if self._client is not None and time.monotonic() - self._last_used > IDLE_CHECK_S:
            self._check_alive()
        reused = self._client is not None
        try:
            self._send(mail)
        except SmtpUnavailable:
            if not reused:
                raise
            # The server had dropped the connection we kept (nothing was handed over): once more
            # on a fresh one.
            self._send(mail)

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                _close(client)

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_alive(self) -> None:
        assert self._client is not None
        try:
            code, _ = self._client.noop()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            self._drop()

    def _send(self, mail: Wire) -> None:
        self.connect()
        client = self._client
        assert client is not None
        options = ["SMTPUTF8", "BODY=8BITMIME"] if mail.international else []
        stage = "MAIL"
        try:
            code, reply = client.mail(mail.sender, options)
            if code != 250:
                self._refused(code, reply, stage)
            stage = "RCPT"
            for rcpt in mail.recipients:
                code, reply = client.rcpt(rcpt)
                if code not in (250, 251):
                    self._refused(code, reply, stage)
            stage = "DATA"
            code, reply = client.data(mail.data)
        except smtplib.SMTPResponseException as exc:  # data() raises when DATA itself is refused
            self._refused(exc.smtp_code, exc.smtp_error, stage)
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            lost = f"SMTP {self.config.address}: connection lost at {stage}: {exc!r}"
            raise (SendUncertain(lost) if stage == "DATA" else SmtpUnavailable(lost)) from exc
        if code != 250:
            self._refused(code, reply, "DATA")
        self._last_used = time.monotonic()

    def _refused(self, code: int, reply: bytes | str, stage: str) -> None:
        if code == 421 or code < 400:  # "closing the transmission channel", or nonsense: not the mail's fault
            self._drop()
            raise SmtpUnavailable(f"SMTP {self.config.address}: {stage} answered {code} {_reply(reply)}")
        try:
            assert self._client is not None
            self._client.rset()  # the connection stays usable for the next mail
        except (OSError, smtplib.SMTPException):
            self._drop()
        raise SmtpRefused(code, _reply(reply), stage)

    def _drop(self) -> None:
        if self._client is not None:
            _close(self._client)
            self._client = None


def _close(client: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        client.close()


__all__ = [
    "RateLimit",
    "SendUncertain",
    "SmtpConfig",
    "SmtpRefused",
    "SmtpSession",
    "SmtpUnavailable",
    "envelope",
]
