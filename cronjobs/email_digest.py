"""email-digest: Plane's stack_email_notification + send_email_notification, sent exactly once.

Every 5 minutes the unprocessed, unsent `email_notification_logs` created up to the run's time are
stacked per receiver and issue, as Plane stacks them, and each stack becomes one `issue-updates`
mail (cronjobs.email_digest_mail). The pairs (receiver, issue) go in chunks (1, 2, 4, ... up to
CHUNK pairs), each pair under a session advisory lock of its own, all of a chunk's taken in one
statement (pairs another live run holds are left to it):

1. one transaction settles the chunk's digests left 'sending' by an earlier run (below), reads the
   pairs' logs again with their issues and people, builds the mails, and marks processed the
   stacks nobody can be sent;
2. the mails are dealt to LANES lanes, each one SMTP connection (connect and every command time
   out after EMAIL_TIMEOUT_S) and one database connection, one mail at a time: the mail's intent
   (plane_workers.email_digests: a key hashed from receiver, issue and the sorted log ids, a
   Message-ID derived from it, the log ids) is committed on its own, then the mail is sent;
3. one transaction marks processed_at and sent_at on exactly the sent mails' logs and their
   digests 'sent' (also when a later mail of the chunk failed), then the locks are released.

Step 1 of the next chunk runs while the lanes send this one. Lanes because each mail costs four
SMTP round trips and an intent's commit: over one connection a relay 20 ms away would cap a run
at about 10 mails/s, under EMAIL_RATE_LIMIT_PER_S (one limit shared by the lanes).

A run that cannot connect to SMTP has written nothing and marks nothing: the next run sends the
backlog. A mail the server refused (an SMTP error reply) has its intent deleted and its logs left
for the next run.

Exactly once, as far as SMTP allows. SMTP has no idempotent submit: once DATA is sent, only the
server's reply says whether the mail was taken, and a run killed (or cut off) before reading it,
or before step 3 committed, leaves a digest 'sending' that nobody can check. The pair's advisory
lock is held from step 1 to step 3 and dies with its session, so a run that holds it and finds a
digest 'sending' knows its sender is dead. That digest is then taken as sent ('presumed_sent'):
its logs are marked and nothing is sent again. This chooses at-most-once: a kill after an intent
was committed but before the server took the mail loses that mail, at most one per lane (a window
of milliseconds per mail: the mail is composed and the connection opened before its intent),
where re-sending would give a duplicate to every kill after the server took it. A lost connection
during a send is treated the same way (it may have been taken) and stops the run.

Two runs never send one stack twice: the runtime's job lock lets one run at a time, and the
pair's lock plus the re-read in step 1 hold even without it.

Where this differs from Plane, on purpose (plane-bgtasks §4.1, §5.3, §7 bugs 5, 6 and 15):
- logs are marked only once their mail was sent, and only the mail's own logs (Plane marked
  every picked log processed before sending, and every log of the receiver sent after each mail);
- links use the issue's stored origin (plane_workers.issue_origins) or else WEB_URL; Plane
  dropped the mail once its 600 s Redis key had expired;
- a stack whose issue or receiver is gone (or who has no e-mail address) is marked processed and
  not sent, as Plane's DoesNotExist path left it; soft-deleted logs are left alone;
- SMTP timeouts, LANES connections per run (Plane opened one per mail).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, text

from cronjobs import email_digest_mail as mails
from cronjobs import email_digest_workers
from cronjobs.email_digest_mail import IssueInfo, LogEntry, Person
from shared.cron.runtime import JobContext
from shared.mail import message
from shared.mail.config import smtp_config
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
# A chunk's receivers and issues as two lists, read through the receiver index (joining the
# chunk's pairs unnested cost PostgreSQL twice the CPU); callers keep the chunk's own pairs.
STACKS = text(
    f"SELECT id, receiver_id, entity_identifier, triggered_by_id, data FROM email_notification_logs"
    f" WHERE {_DUE} AND receiver_id = ANY(:receivers) AND entity_identifier = ANY(:issues)"
    " ORDER BY created_at, id"
)
ISSUES = text(
    """
    SELECT i.id, i.name, i.sequence_id, p.id AS project_id, p.identifier, p.name AS project_name,
           w.slug, o.origin
    FROM issues i JOIN projects p ON p.id = i.project_id JOIN workspaces w ON w.id = p.workspace_id
    LEFT JOIN plane_workers.issue_origins o ON o.issue_id = i.id
    WHERE i.id = ANY(:issues) AND i.deleted_at IS NULL AND p.deleted_at IS NULL
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
ADDRESSED = text("SELECT id FROM users WHERE id = ANY(:ids) AND coalesce(email, '') <> ''")
SENDING = text(
    "SELECT key, receiver_id, issue_id, log_ids FROM plane_workers.email_digests"
    " WHERE receiver_id = ANY(:receivers) AND issue_id = ANY(:issues) AND status = 'sending'"
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
SETTLE = text(
    "UPDATE plane_workers.email_digests SET status = :status, sent_at = now() WHERE key = ANY(:keys)"
)
# A chunk's pair locks, tried (and released) in one statement each.
TRY_LOCKS = text("SELECT k, pg_try_advisory_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
UNLOCKS = text("SELECT pg_advisory_unlock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
CHUNK = 64  # pairs per chunk at most
MIN_PAIRS_PER_PROCESS = CHUNK  # fewer would not repay a process's start (about a second of CPU)
LANES = 4  # SMTP connections sending at once per process (4,000 mails, local sink: 2 took 14.2 s, 4 11.4)

Pair = tuple[uuid.UUID, uuid.UUID]  # (receiver, issue)


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
        pairs = [(receiver, issue) for receiver, issue, _n in conn.execute(PAIRS, {"now": ctx.now})]
        # Plane's SMTP settings (instance_configurations, SKIP_ENV_VAR), as the emails consumer.
        config = smtp_config(ctx.settings, conn)
    if ctx.dry_run:
        _dry_run(ctx, pairs)
        return
    shares = _shares(pairs, ctx.settings.email_digest_processes)
    rate = ctx.settings.email_rate_limit_per_s / len(shares)  # the job's rate, over its processes
    workers = [email_digest_workers.start(ctx, config, rate, share) for share in shares[1:]]
    try:
        send_share(ctx, config, rate, shares[0])
    except BaseException:
        for worker in workers:
            worker.stop()  # they stop after their chunk in hand, marked
        raise
    finally:
        failures = [worker.join(ctx) for worker in workers]  # their counts join this run's
    for failure in failures:
        if failure is not None:
            raise failure


def _shares(pairs: list[Pair], processes: int) -> list[list[Pair]]:
    """Contiguous runs of the sorted pairs (a receiver's stacks stay together), one per process,
    each of at least MIN_PAIRS_PER_PROCESS: a small backlog goes in one."""
    n = max(1, min(processes, len(pairs) // MIN_PAIRS_PER_PROCESS))
    size = -(-len(pairs) // n) if pairs else 0
    return [pairs[k * size : (k + 1) * size] for k in range(n)]


def send_share(ctx: JobContext, config: SmtpConfig, rate_per_s: float, pairs: list[Pair]) -> None:
    """This process's pairs, over LANES SMTP connections under one rate limit."""
    rate = RateLimit(rate_per_s)
    lanes = [_Lane(ctx, SmtpSession(config, rate)) for _ in range(LANES)]
    try:
        # `locks` holds the pairs' session locks; `tx` runs the chunks' transactions.
        with (
            ctx.engine.connect() as locks,
            ctx.engine.connect() as tx,
            ThreadPoolExecutor(LANES, thread_name_prefix="email-digest") as pool,
        ):
            locks.execution_options(isolation_level="AUTOCOMMIT")
            _send_chunks(ctx, locks, tx, pool, lanes, pairs)
    finally:
        for lane in lanes:
            lane.close()


def _send_chunks(
    ctx: JobContext,
    locks: Connection,
    tx: Connection,
    pool: ThreadPoolExecutor,
    lanes: list[_Lane],
    pairs: list[Pair],
) -> None:
    """Each chunk is read and built while the lanes send the one before; every lock taken is
    released on every path (a pooled connection would keep it)."""
    sending: _Sending | None = None
    try:
        for chunk in _chunks(pairs):
            keys = {pair_lock_key(*pair): pair for pair in chunk}
            held = [keys[k] for k, locked in locks.execute(TRY_LOCKS, {"keys": list(keys)}) if locked]
            if not held:  # live runs are on these pairs
                continue
            try:
                prepared = _prepare(ctx, tx, held)
                if sending is not None:
                    done, sending = sending, None
                    _finish(ctx, locks, tx, done)
                    ctx.batch_done()
            except BaseException:
                _unlock(locks, held)
                raise
            shares = zip(lanes, _deal(prepared, len(lanes)), strict=True)
            # Each lane's thread logs with the run's context (job name, dry run).
            futures = [
                pool.submit(contextvars.copy_context().run, lane.send_all, share) for lane, share in shares
            ]
            sending = _Sending(held, futures)
    finally:
        if sending is not None:
            _finish(ctx, locks, tx, sending)


class _Lane:
    """One SMTP connection and one autocommit database connection for its intents: a chunk's mails
    go out over LANES of them at once, each lane one mail at a time, intent first."""

    def __init__(self, ctx: JobContext, smtp: SmtpSession) -> None:
        self.ctx, self.smtp = ctx, smtp
        self.db: Connection | None = None

    def send_all(self, outgoing: list[_Outgoing]) -> tuple[list[_Outgoing], BaseException | None]:
        """The mails the server took, and what stopped the lane (the rest of its share unsent)."""
        if outgoing and self.db is None:
            self.db = self.ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        sent = []
        try:
            for mail in outgoing:
                if _send(self.ctx, self.smtp, self.db, mail):
                    sent.append(mail)
        except Exception as exc:
            return sent, exc
        return sent, None

    def close(self) -> None:
        self.smtp.close()
        if self.db is not None:
            self.db.close()


@dataclass(frozen=True)
class _Outgoing:
    receiver: uuid.UUID
    issue: uuid.UUID
    ids: list[uuid.UUID]
    mail: mails.Mail

    @property
    def key(self) -> str:
        return digest_key(self.receiver, self.issue, self.ids)


@dataclass(frozen=True)
class _Sending:
    pairs: list[Pair]  # their locks are held until the lanes are done and the chunk is marked
    lanes: list[Future[tuple[list[_Outgoing], BaseException | None]]]


def _deal(outgoing: list[_Outgoing], lanes: int) -> list[list[_Outgoing]]:
    return [outgoing[k::lanes] for k in range(lanes)]


def _finish(ctx: JobContext, locks: Connection, tx: Connection, sending: _Sending) -> None:
    """Wait for the chunk's lanes, mark what they sent (also when one failed: what the server took
    is marked now, not presumed later), release the chunk's locks, then raise what stopped a lane."""
    try:
        results = [lane.result() for lane in sending.lanes]
        sent = [mail for lane_sent, _ in results for mail in lane_sent]
        if sent:
            _mark_sent(ctx, tx, [(mail.key, mail.ids) for mail in sent])
    finally:
        _unlock(locks, sending.pairs)
    failures = [exc for _, exc in results if exc is not None]
    if failures:
        # A connection lost mid-send first: it says a mail may have been taken.
        raise next((e for e in failures if isinstance(e, SendInterrupted)), failures[0])


def _unlock(locks: Connection, pairs: list[Pair]) -> None:
    locks.execute(UNLOCKS, {"keys": [pair_lock_key(*pair) for pair in pairs]})


def _chunks(pairs: list[Pair]) -> Iterator[list[Pair]]:
    """1, 2, 4, ... up to CHUNK pairs: the first mail goes out at once, and runs that start together
    (each locks a whole chunk) still share the work."""
    size, at = 1, 0
    while at < len(pairs):
        yield pairs[at : at + size]
        at += size
        size = min(size * 2, CHUNK)


def _dry_run(ctx: JobContext, pairs: list[Pair]) -> None:
    with ctx.engine.connect() as conn:
        for at in range(0, len(pairs), CHUNK):
            chunk = pairs[at : at + CHUNK]
            live = {r.id for r in conn.execute(ISSUES, {"issues": list({i for _, i in chunk})})}
            addressed = set(conn.scalars(ADDRESSED, {"ids": list({r for r, _ in chunk})}))
            stacks = _stacks(conn, ctx, chunk)
            for pair, entries in stacks.items():
                sendable = pair[1] in live and pair[0] in addressed
                ctx.count("mails" if sendable else "skipped_mails")
                ctx.count("logs" if sendable else "skipped_logs", len(entries))


def _stacks(conn: Connection, ctx: JobContext, pairs: list[Pair]) -> dict[Pair, list[LogEntry]]:
    """The due logs of `pairs`, in time order, per pair (pairs without any are left out)."""
    wanted = set(pairs)
    stacks: dict[Pair, list[LogEntry]] = {}
    for row in conn.execute(STACKS, {**_lists(pairs), "now": ctx.now}):
        pair = (row.receiver_id, row.entity_identifier)
        if pair in wanted:  # the two lists also match pairs of other chunks
            stacks.setdefault(pair, []).append(LogEntry(row.id, row.triggered_by_id, row.data))
    return stacks


def _lists(pairs: list[Pair]) -> dict[str, list[uuid.UUID]]:
    return {"receivers": list({r for r, _ in pairs}), "issues": list({i for _, i in pairs})}


def _settle_dead(ctx: JobContext, tx: Connection, pairs: list[Pair]) -> None:
    """Digests of `pairs` left 'sending': their sender is dead (it would hold the pair's lock) and
    the server may have taken the mail, so they are taken as sent. Never twice."""
    wanted = set(pairs)
    dead = [r for r in tx.execute(SENDING, _lists(pairs)) if (r.receiver_id, r.issue_id) in wanted]
    if not dead:
        return
    tx.execute(MARK_LOGS, {"ids": [i for r in dead for i in r.log_ids]})
    tx.execute(SETTLE, {"keys": [r.key for r in dead], "status": "presumed_sent"})
    for r in dead:
        log.warning("email digest %s was left sending by a dead run: taken as sent", r.key)
    ctx.count("presumed_sent", len(dead))


def _prepare(ctx: JobContext, tx: Connection, pairs: list[Pair]) -> list[_Outgoing]:
    """Pairs whose locks the caller holds: settled, read and built in one transaction, which also
    marks processed the stacks nobody can be sent."""
    with tx.begin():
        _settle_dead(ctx, tx, pairs)
        stacks = _stacks(tx, ctx, pairs)
        built = _mails(ctx.settings, tx, stacks)
        skipped = [e.id for pair, entries in stacks.items() if built.get(pair) is None for e in entries]
        if skipped:  # nobody to send it to, or nothing to send it about
            tx.execute(MARK_PROCESSED, {"ids": skipped})
    if skipped:
        ctx.count("skipped_mails", sum(1 for mail in built.values() if mail is None))
        ctx.count("skipped_logs", len(skipped))
    return [
        _Outgoing(receiver, issue, [e.id for e in stacks[(receiver, issue)]], mail)
        for (receiver, issue), mail in built.items()
        if mail is not None
    ]


def _send(ctx: JobContext, smtp: SmtpSession, db: Connection, out: _Outgoing) -> bool:
    """Intent, then the mail; True once the server took it."""
    key = out.key
    sender = smtp.config.from_address
    msg_id = message.message_id(sender, key, "digest")
    mail = out.mail
    composed = message.wire(sender, mail.to, mail.subject, mail.html, mail.text, msg_id)
    smtp.connect()  # before the intent: SMTP down leaves nothing recorded
    intent = {
        "key": key,
        "receiver": out.receiver,
        "issue": out.issue,
        "log_ids": out.ids,
        "message_id": msg_id,
    }
    if not db.execute(INTENT, intent).rowcount:  # its own transaction: committed before the send
        log.warning("email digest %s already recorded; not sent again", key)
        return False
    try:
        smtp.send(composed)
    except (SmtpRefused, SmtpUnavailable) as exc:
        # The server has not taken the mail: the logs stay for the next run.
        db.execute(FORGET, {"key": key})
        if isinstance(exc, SmtpUnavailable):
            raise  # and every later mail would fail the same way: the next run sends the backlog
        ctx.count("refused_mails")
        log.error("email digest %s refused by the SMTP server: %s", key, exc)
        return False
    except SendUncertain as exc:
        raise SendInterrupted(f"email digest {key}: {exc}") from exc
    return True


def _mark_sent(ctx: JobContext, tx: Connection, sent: list[tuple[str, list[uuid.UUID]]]) -> None:
    with tx.begin():
        tx.execute(MARK_LOGS, {"ids": [i for _, ids in sent for i in ids]})
        tx.execute(SETTLE, {"keys": [key for key, _ in sent], "status": "sent"})
    ctx.count("mails", len(sent))
    ctx.count("logs", sum(len(ids) for _, ids in sent))


def _mails(
    settings: Settings, conn: Connection, stacks: dict[Pair, list[LogEntry]]
) -> dict[Pair, mails.Mail | None]:
    """Each stack's mail, None where its issue or receiver (or the receiver's address) is gone."""
    if not stacks:
        return {}
    issues = {r.id: r for r in conn.execute(ISSUES, {"issues": list({i for _, i in stacks})})}
    wanted = {r for r, _ in stacks}
    for entries in stacks.values():
        wanted |= {e.actor_id for e in entries} | mails.mentioned_ids(entries)
    people = {
        r.id: Person(r.email, r.first_name or "", r.last_name or "", r.display_name or "", r.avatar_url or "")
        for r in conn.execute(PEOPLE, {"ids": list(wanted)})
    }
    built: dict[Pair, mails.Mail | None] = {}
    for (receiver_id, issue_id), entries in stacks.items():
        row, receiver = issues.get(issue_id), people.get(receiver_id)
        if row is None or receiver is None or not receiver.email:
            built[(receiver_id, issue_id)] = None
            continue
        issue = IssueInfo(row.id, row.name, row.sequence_id, row.project_id, row.identifier,
                          row.project_name, row.slug)  # fmt: skip
        origin = row.origin or settings.web_url
        if not row.origin:
            log.debug("issue %s has no stored origin; links use WEB_URL", issue_id)
        built[(receiver_id, issue_id)] = mails.build(settings, issue, receiver, entries, people, origin)
    return built
