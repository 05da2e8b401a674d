"""Consumer `emails`: Plane's transactional mails, a batch of events per transaction, over a kept
SMTP connection.

A batch's events are claimed in one statement (shared/kafka/batch.py); each event's mail is then
built (Plane's reads, and the invite `message` Plane writes, in a savepoint of its own) and sent,
one after another, and the transaction commits once the batch is through. A failure never makes
the runtime run the batch again event by event, which would send the mails before it twice: the
handler catches each event's failure and raises EventFailures at the end, so the mails the server
took stay claimed and only the failed events are retried, held or dead-lettered.

Where SMTP leaves doubt this chooses at least once: a process killed after the server's 250 and
before the batch's commit sends those mails again when their events are redelivered (at most one
batch: 50, shared/registry.py), with the same Message-ID (derived from the event id), because SMTP has no
idempotent submit. These mails carry sign-in codes, password resets and invitations: a duplicate
is a nuisance, a lost one locks a person out. (The digest, whose mails repeat what the app
already shows, chooses at most once: cronjobs/email_digest.py.)

What a failure does, by shared.mail.smtp's classes:
- SmtpUnavailable (no connection, login refused, 421): DependencyUnavailable for this event and
  the rest of the batch; the runtime holds the partition and runs the batch again later, its
  retry budget untouched (the mails already taken are skipped as done). Nothing is lost while
  the server is down.
- SmtpRefused 4xx (greylisting, mailbox full): the retry tiers, then the DLQ.
- SmtpRefused 5xx (no such mailbox, policy): the DLQ at once, with the server's reply.
- SendUncertain (lost during DATA): the retry tiers; the server may have the mail already.
- NothingToSend (the invite or user is gone): logged and counted, as Plane returned silently.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from prometheus_client import Counter
from sqlalchemy import Connection, Engine

from services.emails import catalogue
from shared.db import errors as db_errors
from shared.events import Event
from shared.kafka.handler import DependencyUnavailable, EventFailures, HandlerContext, PermanentError
from shared.mail.config import SmtpConfigSource
from shared.mail.message import message_id, wire
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


def handle_batch(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with batch="
    smtp = _outbox(ctx.settings, session.get_bind()).session()
    failures: dict[str, Exception] = {}
    for at, event in enumerate(events):
        try:
            kind = catalogue.mail_type(event.type)
            if kind.reads_database:
                with session.begin_nested():  # its reads and writes, undone if its mail is not sent
                    _send(kind, event, session.connection(), ctx, smtp)
            else:
                _send(kind, event, session.connection(), ctx, smtp)
        except DependencyUnavailable as exc:
            # Every later mail would fail the same way: they wait with this one.
            failures |= dict.fromkeys((e.id for e in events[at:]), exc)
            break
        except Exception as exc:
            if db_errors.unavailable(exc):
                raise  # the transaction is gone: the batch comes again (at least once)
            failures[event.id] = exc
    if failures:
        raise EventFailures(failures)


def _send(
    kind: catalogue.MailType, event: Event, conn: Connection, ctx: HandlerContext, smtp: SmtpSession
) -> None:
    try:
        mail = kind.build(conn, ctx.settings, event.data)
    except catalogue.NothingToSend as exc:
        log.info("%s: nothing to send: %s", kind.name, exc)
        MAILS.labels(kind.name, "nothing_to_send").inc()
        return
    sender = smtp.config.from_address
    msg_id = message_id(sender, event.id.replace("-", ""), "mail")
    message = wire(sender, mail.to, mail.subject, mail.html, mail.text, msg_id, mail.attachments)
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
    log.info("%s mail sent", kind.name, extra={"fields": {"message_id": msg_id, "event_id": event.id}})
