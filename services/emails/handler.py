"""Consumer `emails`: Plane's transactional mails, a batch of events per transaction, over kept
SMTP connections.

A batch's events are claimed in one statement (shared/kafka/batch.py); each event's mail is then
built (Plane's reads, and the invite `message` Plane writes, in a savepoint of its own), the
mails are sent over LANES connections at once, and the transaction commits once all are through.
A failure never makes the runtime run the batch again event by event, which would send the mails
before it twice: the handler catches each event's failure and raises EventFailures at the end, so
the mails the server took stay claimed and only the failed events are retried, held or
dead-lettered.

Where SMTP leaves doubt this chooses at least once: a process killed after the server's 250 and
before the batch's commit sends those mails again when their events are redelivered (at most one
batch: 50, shared/registry.py), with the same Message-ID (derived from the event id), because
SMTP has no idempotent submit. These mails carry sign-in codes, password resets and invitations: a duplicate
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

import contextlib
import contextvars
import functools
import logging
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import Connection, Engine

from services.emails import catalogue
from services.emails.mails_common import Mail
from shared.db import errors as db_errors
from shared.events import Event
from shared.kafka.handler import DependencyUnavailable, EventFailures, HandlerContext, PermanentError
from shared.mail.config import SmtpConfigSource
from shared.mail.message import Wire, message_id, wire
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


LANES = 2  # SMTP connections a batch's mails go out over at once


class Outbox:
    """The process's SMTP connections (LANES), under the configuration Plane's admin set (re-read
    every minute, so a change there applies without a restart) and one send rate limit."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._configs = SmtpConfigSource(settings, engine)
        self._rate = RateLimit(settings.email_rate_limit_per_s)
        self._sessions: list[SmtpSession] = []
        self.pool = ThreadPoolExecutor(LANES - 1, thread_name_prefix="emails-lane")

    def sessions(self) -> list[SmtpSession]:
        config = self._configs.get()
        if not self._sessions or self._sessions[0].config != config:
            for old in self._sessions:
                old.close()
            self._sessions = [SmtpSession(config, self._rate) for _ in range(LANES)]
        return self._sessions


@functools.cache
def _outbox(settings: Settings, engine: Engine) -> Outbox:
    return Outbox(settings, engine)


@dataclass(frozen=True)
class _Outgoing:
    event: Event
    kind: catalogue.MailType
    mail: Wire


def handle_batch(events: Sequence[Event], ctx: HandlerContext) -> None:
    """Every mail of the batch built first, on the transaction (a savepoint each where it reads or
    writes), then sent over the LANES connections, a recipient's mails over one of them in order.
    A mail's writes (an invite's `message`) stay when its send fails, as Plane wrote before sending;
    the retry writes the same."""
    session = ctx.session
    assert session is not None, "registered with batch="
    outbox = _outbox(ctx.settings, session.get_bind())
    lanes = outbox.sessions()
    sender = lanes[0].config.from_address
    failures: dict[str, Exception] = {}
    shares: list[list[_Outgoing]] = [[] for _ in lanes]
    for event in events:
        try:
            kind = catalogue.mail_type(event.type)
            # A savepoint where the mail reads or writes: a failed one is undone alone.
            with session.begin_nested() if kind.reads_database else contextlib.nullcontext():
                mail = _build(kind, event, session.connection(), ctx)
        except Exception as exc:
            if db_errors.unavailable(exc):
                raise  # nothing was sent yet: the batch comes again
            failures[event.id] = exc
            continue
        if mail is not None:
            msg_id = message_id(sender, event.id.replace("-", ""), "mail")
            out = _Outgoing(event, kind, wire(sender, mail.to, mail.subject, mail.html, mail.text, msg_id,
                                              mail.attachments))  # fmt: skip
            shares[zlib.crc32(",".join(out.mail.recipients).encode()) % len(lanes)].append(out)
    # The lanes log with the batch's context (consumer, topic).
    others = [
        outbox.pool.submit(contextvars.copy_context().run, _send_all, smtp, share)
        for smtp, share in zip(lanes[1:], shares[1:], strict=True)
    ]
    failures |= _send_all(lanes[0], shares[0])
    for lane in others:
        failures |= lane.result()
    if failures:
        raise EventFailures(failures)


def _build(kind: catalogue.MailType, event: Event, conn: Connection, ctx: HandlerContext) -> Mail | None:
    try:
        return kind.build(conn, ctx.settings, event.data)
    except catalogue.NothingToSend as exc:
        log.info("%s: nothing to send: %s", kind.name, exc)
        MAILS.labels(kind.name, "nothing_to_send").inc()
        return None


def _send_all(smtp: SmtpSession, outgoing: list[_Outgoing]) -> dict[str, Exception]:
    """One lane's mails in order; what failed, by event id. The server down: this mail and the
    lane's later ones wait (DependencyUnavailable), the ones it took stand."""
    failures: dict[str, Exception] = {}
    for at, out in enumerate(outgoing):
        try:
            _send(smtp, out)
        except DependencyUnavailable as exc:
            failures |= dict.fromkeys((o.event.id for o in outgoing[at:]), exc)
            break
        except Exception as exc:
            failures[out.event.id] = exc
    return failures


def _send(smtp: SmtpSession, out: _Outgoing) -> None:
    name = out.kind.name
    try:
        smtp.send(out.mail)
    except SmtpUnavailable as exc:
        raise DependencyUnavailable(str(exc)) from exc
    except SmtpRefused as exc:
        if exc.permanent:
            raise PermanentError(f"{name} mail refused: {exc}") from exc
        raise MailDeferred(f"{name} mail deferred: {exc}") from exc
    except SendUncertain as exc:
        raise MailDeferred(f"{name} mail may not have been taken: {exc}") from exc
    MAILS.labels(name, "sent").inc()
    log.info("%s mail sent", name, extra={"fields": {"event_id": out.event.id}})
