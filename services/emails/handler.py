"""Consumer `emails`: one transactional mail per event, over a kept SMTP connection.

Each event is claimed, its mail built (Plane's reads, and the invite `message` Plane writes) and
sent in one transaction, committed once the server accepted the mail. Where SMTP leaves doubt
this chooses at least once: a process killed between the server's 250 and the commit sends that
mail again when the event is redelivered, with the same Message-ID (derived from the event id),
because SMTP has no idempotent submit. These mails carry sign-in codes, password resets and
invitations: a duplicate is a nuisance, a lost one locks a person out. (The digest, whose mails
repeat what the app already shows, chooses at most once: cronjobs/email_digest.py.)

What a failure does, by shared.mail.smtp's classes:
- SmtpUnavailable (no connection, login refused, 421): the runtime holds the partition and
  tries the same event again, its retry budget untouched. Nothing is lost while the server is
  down, and nothing is marked.
- SmtpRefused 4xx (greylisting, mailbox full): the retry tiers, then the DLQ.
- SmtpRefused 5xx (no such mailbox, policy): the DLQ at once, with the server's reply.
- SendUncertain (lost during DATA): the retry tiers; the server may have the mail already.
- NothingToSend (the invite or user is gone): logged and counted, as Plane returned silently.
"""

from __future__ import annotations

import functools
import logging

from prometheus_client import Counter
from sqlalchemy import Engine

from services.emails import catalogue
from shared.events import Event
from shared.kafka.handler import DependencyUnavailable, HandlerContext, PermanentError
from shared.mail.config import SmtpConfigSource
from shared.mail.message import compose, message_id
from shared.mail.smtp import RateLimit, SendUncertain, SmtpRefused, SmtpSession, SmtpUnavailable
from shared.settings import Settings

log = logging.getLogger(__name__)

MAILS = Counter(
    "plane_workers_emails_total",
    "Transactional mails by type and outcome (sent, nothing_to_send).",
    ["mail", "outcome"],
)


class MailDeferred(Exception):
    """The server asked to try later (4xx), or the connection failed mid-DATA: retried in tiers."""


class Outbox:
    """The process's SMTP connection, under the configuration Plane's admin set (re-read every
    minute, so a change there applies without a restart) and the process's send rate limit."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._configs = SmtpConfigSource(settings, engine)
        self._rate = RateLimit(settings.email_rate_limit_per_s)
        self._session: SmtpSession | None = None

    def session(self) -> SmtpSession:
        config = self._configs.get()
        if self._session is None or self._session.config != config:
            if self._session is not None:
                self._session.close()
            self._session = SmtpSession(config, self._rate)
        return self._session


@functools.cache
def _outbox(settings: Settings, engine: Engine) -> Outbox:
    return Outbox(settings, engine)


def handle(event: Event, ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with idempotency='transaction'"
    kind = catalogue.mail_type(event.type)
    try:
        mail = kind.build(session.connection(), ctx.settings, event.data)
    except catalogue.NothingToSend as exc:
        log.info("%s: nothing to send: %s", kind.name, exc)
        MAILS.labels(kind.name, "nothing_to_send").inc()
        return
    smtp = _outbox(ctx.settings, session.get_bind()).session()
    sender = smtp.config.from_address
    msg_id = message_id(sender, event.id.replace("-", ""), "mail")
    message = compose(sender, mail.to, mail.subject, mail.html, mail.text, msg_id, mail.attachments)
    try:
        smtp.send(message)
    except SmtpUnavailable as exc:
        raise DependencyUnavailable(str(exc)) from exc
    except SmtpRefused as exc:
        if exc.permanent:
            raise PermanentError(f"{kind.name} mail refused: {exc}") from exc
        raise MailDeferred(f"{kind.name} mail deferred: {exc}") from exc
    except SendUncertain as exc:
        raise MailDeferred(f"{kind.name} mail may not have been taken: {exc}") from exc
    MAILS.labels(kind.name, "sent").inc()
    log.info("%s mail sent", kind.name, extra={"fields": {"message_id": msg_id}})
