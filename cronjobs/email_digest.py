"""email-digest: Plane's stack_email_notification + send_email_notification, sent exactly once.

Every 5 minutes the unprocessed, unsent `email_notification_logs` created up to the run's time are
stacked per receiver and issue, as Plane stacks them, and each stack becomes one `issue-updates`
mail (cronjobs.email_digest_mail). Per (receiver, issue), under a session advisory lock of its own:

1. a digest left 'sending' by an earlier run is settled (below);
2. the pair's logs are read again and the mail built; its intent (plane_workers.email_digests:
   a key hashed from receiver, issue and the sorted log ids, a Message-ID derived from it, the
   log ids) is committed;
3. the mail goes over the run's one SMTP connection (connect and every command time out after
   mail.SMTP_TIMEOUT_S);
4. one transaction marks processed_at and sent_at on exactly the mail's logs and the digest 'sent'.

A run that cannot connect to SMTP has written nothing and marks nothing: the next run sends the
backlog. A mail the server refused (an SMTP error reply) has its intent deleted and its logs left
for the next run.

Exactly once, as far as SMTP allows. SMTP has no idempotent submit: once DATA is sent, only the
server's reply says whether the mail was taken, and a run killed (or cut off) before reading it,
or before step 4 committed, leaves a digest 'sending' that nobody can check. The pair's advisory
lock is held from step 2 to step 4 and dies with its session, so a run that holds it and finds a
digest 'sending' knows its sender is dead. That digest is then taken as sent ('presumed_sent'):
its logs are marked and nothing is sent again. This chooses at-most-once: a kill after the intent
was committed but before the server took the mail loses that one mail (a window of milliseconds
per mail: the connection is opened before the first intent), where re-sending would give a
duplicate to every kill after the server took it. A lost connection during a send is treated the
same way (it may have been taken) and stops the run.

Two runs never send one stack twice: the runtime's job lock lets one run at a time, and the
pair's lock plus the re-read in step 2 hold even without it.

Where this differs from Plane, on purpose (plane-bgtasks §4.1, §5.3, §7 bugs 5, 6 and 15):
- logs are marked only once their mail was sent, and only the mail's own logs (Plane marked
  every picked log processed before sending, and every log of the receiver sent after each mail);
- links use the issue's stored origin (plane_workers.issue_origins) or else WEB_URL; Plane
  dropped the mail once its 600 s Redis key had expired;
- a stack whose issue or receiver is gone (or who has no e-mail address) is marked processed and
  not sent, as Plane's DoesNotExist path left it; soft-deleted logs are left alone;
- SMTP timeouts, one connection per run.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence

from sqlalchemy import Connection, text

from cronjobs import email_digest_mail as mails
from cronjobs.email_digest_mail import IssueInfo, LogEntry, Person
from shared.cron.runtime import JobContext
from shared.mail import message
from shared.mail.smtp import RateLimit, SendUncertain, SmtpConfig, SmtpRefused, SmtpSession, SmtpUnavailable
from shared.settings import Settings

log = logging.getLogger(__name__)

_DUE = (
    "deleted_at IS NULL AND processed_at IS NULL AND sent_at IS NULL"
    " AND entity_identifier IS NOT NULL AND created_at <= :now"
)
PAIRS = text(
    f"SELECT receiver_id, entity_identifier, count(*) AS n FROM email_notification_logs WHERE {_DUE}"
    " GROUP BY receiver_id, entity_identifier ORDER BY receiver_id, entity_identifier"
)
STACK = text(
    f"SELECT id, triggered_by_id, data FROM email_notification_logs WHERE {_DUE}"
    " AND receiver_id = :receiver AND entity_identifier = :issue ORDER BY created_at, id"
)
ISSUE = text(
    """
    SELECT i.id, i.name, i.sequence_id, p.id AS project_id, p.identifier, p.name AS project_name,
           w.slug, o.origin
    FROM issues i JOIN projects p ON p.id = i.project_id JOIN workspaces w ON w.id = p.workspace_id
    LEFT JOIN plane_workers.issue_origins o ON o.issue_id = i.id
    WHERE i.id = :issue AND i.deleted_at IS NULL AND p.deleted_at IS NULL
    """
)
PEOPLE = text(
    """
    SELECT id, email, first_name, last_name, display_name,
           CASE WHEN avatar_asset_id IS NOT NULL THEN '/api/assets/v2/static/' || avatar_asset_id || '/'
                ELSE coalesce(avatar, '') END AS avatar_url
    FROM users WHERE id = ANY(:ids)
    """
)
SENDING = text(
    "SELECT key, log_ids FROM plane_workers.email_digests"
    " WHERE receiver_id = :receiver AND issue_id = :issue AND status = 'sending'"
)
INTENT = text(
    """
    INSERT INTO plane_workers.email_digests (key, receiver_id, issue_id, log_ids, message_id, status)
    VALUES (:key, :receiver, :issue, :log_ids, :message_id, 'sending') ON CONFLICT (key) DO NOTHING
    """
)
FORGET = text("DELETE FROM plane_workers.email_digests WHERE key = :key AND status = 'sending'")
MARK_LOGS = text(
    "UPDATE email_notification_logs SET processed_at = now(), sent_at = now()"
    " WHERE id = ANY(:ids) AND sent_at IS NULL"
)
MARK_PROCESSED = text(
    "UPDATE email_notification_logs SET processed_at = now() WHERE id = ANY(:ids) AND processed_at IS NULL"
)
SETTLE = text("UPDATE plane_workers.email_digests SET status = :status, sent_at = now() WHERE key = :key")
TRY_LOCK = text("SELECT pg_try_advisory_lock(:k)")
UNLOCK = text("SELECT pg_advisory_unlock(:k)")


class SendInterrupted(RuntimeError):
    """The connection failed during a send: that mail may have been taken (presumed sent)."""


def pair_lock_key(receiver: uuid.UUID, issue: uuid.UUID) -> int:
    digest = hashlib.sha256(f"plane-workers:email-digest:{receiver}:{issue}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def digest_key(receiver: uuid.UUID, issue: uuid.UUID, log_ids: Sequence[uuid.UUID]) -> str:
    joined = ",".join(sorted(str(i) for i in log_ids))
    return hashlib.sha256(f"{receiver}|{issue}|{joined}".encode()).hexdigest()


def run(ctx: JobContext) -> None:
    with ctx.engine.connect() as conn:
        pairs = conn.execute(PAIRS, {"now": ctx.now}).all()
    if ctx.dry_run:
        for receiver, issue, n in pairs:
            with ctx.engine.connect() as conn:
                sendable = _sendable(conn, issue, receiver)
            ctx.count("mails" if sendable else "skipped_mails")
            ctx.count("logs" if sendable else "skipped_logs", n)
        return
    config = SmtpConfig.from_settings(ctx.settings)
    smtp = SmtpSession(config, RateLimit(ctx.settings.email_rate_limit_per_s))
    try:
        with ctx.engine.connect() as lock_conn:
            for receiver, issue, _n in pairs:
                key = pair_lock_key(receiver, issue)
                locked = lock_conn.scalar(TRY_LOCK, {"k": key})
                lock_conn.commit()
                if not locked:  # a live run is on this pair
                    continue
                try:
                    _digest(ctx, smtp, receiver, issue)
                finally:
                    lock_conn.execute(UNLOCK, {"k": key})
                    lock_conn.commit()
                ctx.batch_done()
    finally:
        smtp.close()


def _sendable(conn: Connection, issue: uuid.UUID, receiver: uuid.UUID) -> bool:
    if conn.execute(ISSUE, {"issue": issue}).first() is None:
        return False
    return bool(conn.scalar(text("SELECT email FROM users WHERE id = :id"), {"id": receiver}))


def _digest(ctx: JobContext, smtp: SmtpSession, receiver: uuid.UUID, issue_id: uuid.UUID) -> None:
    """One pair, its advisory lock held by the caller."""
    params = {"receiver": receiver, "issue": issue_id, "now": ctx.now}
    with ctx.engine.begin() as conn:
        for key, log_ids in conn.execute(SENDING, params).all():
            # Its sender is dead (it would hold the lock): the server may have taken it. Never twice.
            conn.execute(MARK_LOGS, {"ids": list(log_ids)})
            conn.execute(SETTLE, {"key": key, "status": "presumed_sent"})
            log.warning("email digest %s was left sending by a dead run: taken as sent", key)
            ctx.count("presumed_sent")
    with ctx.engine.connect() as conn:
        rows = conn.execute(STACK, params).all()
        if not rows:
            return
        entries = [LogEntry(r.id, r.triggered_by_id, r.data) for r in rows]
        ids = [e.id for e in entries]
        mail = _mail(ctx.settings, conn, issue_id, receiver, entries)
    if mail is None:  # nobody to send it to, or nothing to send it about
        with ctx.engine.begin() as conn:
            conn.execute(MARK_PROCESSED, {"ids": ids})
        ctx.count("skipped_mails")
        ctx.count("skipped_logs", len(ids))
        return

    smtp.connect()  # before the intent: SMTP down leaves nothing recorded
    key = digest_key(receiver, issue_id, ids)
    msg_id = message.message_id(smtp.config.from_address, key, "digest")
    with ctx.engine.begin() as conn:
        if not conn.execute(INTENT, {**params, "key": key, "log_ids": ids, "message_id": msg_id}).rowcount:
            log.warning("email digest %s already recorded; not sent again", key)
            return
    try:
        sender = smtp.config.from_address
        smtp.send(message.compose(sender, mail.to, mail.subject, mail.html, mail.text, msg_id))
    except (SmtpRefused, SmtpUnavailable) as exc:
        # The server has not taken the mail: the logs stay for the next run.
        with ctx.engine.begin() as conn:
            conn.execute(FORGET, {"key": key})
        if isinstance(exc, SmtpUnavailable):
            raise  # and every later mail would fail the same way: the next run sends the backlog
        ctx.count("refused_mails")
        log.error("email digest %s refused by the SMTP server: %s", key, exc)
        return
    except SendUncertain as exc:
        raise SendInterrupted(f"email digest {key}: {exc}") from exc
    _mark_sent(ctx, key, ids)


def _mark_sent(ctx: JobContext, key: str, ids: list[uuid.UUID]) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(MARK_LOGS, {"ids": ids})
        conn.execute(SETTLE, {"key": key, "status": "sent"})
    ctx.count("mails")
    ctx.count("logs", len(ids))


def _mail(
    settings: Settings, conn: Connection, issue_id: uuid.UUID, receiver_id: uuid.UUID, entries: list[LogEntry]
) -> mails.Mail | None:
    row = conn.execute(ISSUE, {"issue": issue_id}).first()
    if row is None:
        return None
    wanted = {receiver_id, *(e.actor_id for e in entries), *mails.mentioned_ids(entries)}
    people = {
        r.id: Person(r.email, r.first_name or "", r.last_name or "", r.display_name or "", r.avatar_url or "")
        for r in conn.execute(PEOPLE, {"ids": list(wanted)})
    }
    receiver = people.get(receiver_id)
    if receiver is None or not receiver.email:
        return None
    issue = IssueInfo(row.id, row.name, row.sequence_id, row.project_id, row.identifier,
                      row.project_name, row.slug)  # fmt: skip
    origin = row.origin or settings.web_url
    if not row.origin:
        log.debug("issue %s has no stored origin; links use WEB_URL", issue_id)
    return mails.build(settings, issue, receiver, entries, people, origin)
