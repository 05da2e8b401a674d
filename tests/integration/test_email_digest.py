"""email-digest against real PostgreSQL and SMTP over the wire (aiosmtpd): stacking, the mail,
once-only sending across concurrent runs, kills and SMTP outages (R21)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from cronjobs import email_digest
from cronjobs.samples._seed import scope
from shared import registry
from shared.cron.runtime import EXIT_FAILED, EXIT_OK, JobContext, run_job
from shared.embedded.ports import free_port
from shared.embedded.smtp import CapturedMail, EmbeddedSMTP
from shared.embedded.stack import env_for
from shared.settings import Settings
from shared.testing.plane_rows import insert_one, insert_user

SPEC = registry.job("email-digest")
WEB = "https://web.example"
ORIGIN = "https://origin.example"
pytestmark = pytest.mark.timeout(120)


class SlowSMTP:
    """aiosmtpd that records each message, then waits `delay` s before answering (`refuse`: 550 for
    subjects containing it): a mail the server holds before the client has read its reply."""

    def __init__(self, delay: float = 0.0, refuse: str | None = None) -> None:
        self.delay, self.refuse = delay, refuse
        self.port = free_port()
        self.received: list[CapturedMail] = []
        self.lock = threading.Lock()
        self.controller: Any = None

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        from email import message_from_bytes

        mail = CapturedMail(
            envelope.mail_from, tuple(envelope.rcpt_tos), message_from_bytes(envelope.content)
        )
        if self.refuse and self.refuse in str(mail.message["Subject"]):
            return "550 not today"
        with self.lock:
            self.received.append(mail)
        await asyncio.sleep(self.delay)
        return "250 OK"

    def __enter__(self) -> SlowSMTP:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[CapturedMail]:
        with self.lock:
            return list(self.received)


def mail_settings(settings: Settings, port: int, **more: Any) -> Settings:
    return replace(
        settings, email_host="127.0.0.1", email_port=port, email_use_tls=False, web_url=WEB, **more
    )


@dataclass
class World:
    engine: Engine
    actor: uuid.UUID
    other_actor: uuid.UUID
    receivers: list[uuid.UUID]
    emails: dict[uuid.UUID, str]
    issues: dict[int, uuid.UUID]  # sequence id -> issue; issue 1 has a stored origin
    slug: str
    project: uuid.UUID

    def log(self, receiver: uuid.UUID, issue: int, field: str, new: str, *, actor: uuid.UUID | None = None,
            minutes_ago: float = 1, old: str = "None", **more: Any) -> uuid.UUID:  # fmt: skip
        actor = actor or self.actor
        at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        activity = {"field": field, "old_value": old, "new_value": new, "actor": str(actor),
                    "activity_time": at.isoformat().replace("+00:00", "Z")}  # fmt: skip
        data = {"issue": {"id": str(self.issues[issue])}, "issue_activity": activity}
        with self.engine.begin() as conn:
            return insert_one(conn, "email_notification_logs", receiver_id=receiver, triggered_by_id=actor,
                              entity_identifier=self.issues[issue], entity_name="issue", entity="",
                              data=json.dumps(data), created_at=at, **more)  # fmt: skip

    def url(self, issue: int, origin: str) -> str:
        return f"{origin}/{self.slug}/projects/{self.project}/issues/{self.issues[issue]}"

    def marked(self) -> dict[str, set[uuid.UUID]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, processed_at, sent_at FROM email_notification_logs")).all()
        return {
            "sent": {r.id for r in rows if r.sent_at},
            "processed": {r.id for r in rows if r.processed_at},
        }

    def digests(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.scalars(text("SELECT status FROM plane_workers.email_digests")))


@pytest.fixture
def world(engine: Engine) -> World:
    with engine.begin() as conn:
        s = scope(conn, name="Web App", identifier="WEB")
        actor = insert_user(conn, first_name="Ada", last_name="Lovelace", display_name="ada")
        other = insert_user(conn, first_name="Bob", last_name="Builder", display_name="bob")
        receivers = [insert_user(conn, first_name=f"R{i}") for i in range(3)]
        emails = dict(
            conn.execute(text("SELECT id, email FROM users WHERE id = ANY(:i)"), {"i": receivers}).all()
        )
        issues = {
            n: insert_one(conn, "issues", name=name, sequence_id=n, priority="none", project_id=s.project,
                          workspace_id=s.workspace)
            for n, name in ((1, "Fix\x01 the\x1f login\x7f\x9f"), (2, "Second issue"))
        }  # fmt: skip
        conn.execute(
            text("INSERT INTO plane_workers.issue_origins (issue_id, origin) VALUES (:i, :o)"),
            {"i": issues[1], "o": ORIGIN},
        )
        slug = conn.scalar(text("SELECT slug FROM workspaces WHERE id = :w"), {"w": s.workspace})
    return World(engine, actor, other, receivers, emails, issues, slug, s.project)


def part(message: Message, kind: str) -> str:
    found = next(p for p in message.walk() if p.get_content_type() == kind)
    return found.get_payload(decode=True).decode()


def by_pair(messages: list[CapturedMail]) -> dict[tuple[str, str], int]:
    seen: dict[tuple[str, str], int] = {}
    for m in messages:
        pair = (",".join(m.recipients), str(m.message["Subject"]))
        seen[pair] = seen.get(pair, 0) + 1
    return seen


def test_stacks_per_receiver_and_issue_into_one_mail_each(settings, world, smtp: EmbeddedSMTP) -> None:  # type: ignore[no-untyped-def]
    r0, r1, r2 = world.receivers
    first = [
        world.log(r0, 1, "priority", "high", old="low", minutes_ago=4),
        world.log(r0, 1, "priority", "urgent", old="high", minutes_ago=3),
        world.log(r0, 1, "state", "Done", actor=world.other_actor, minutes_ago=2),
    ]
    second = [world.log(r0, 2, "labels", "bug")]
    other = [world.log(r1, 2, "name", "Second issue")]
    untouched = [
        world.log(r2, 1, "priority", "low", minutes_ago=-60),  # after the run's time: the next run's
        world.log(r2, 1, "priority", "low", deleted_at=datetime.now(UTC)),
    ]
    s = mail_settings(settings, smtp.port)

    code, dry = run_job(SPEC, s, dry_run=True)
    assert code == EXIT_OK and dry is not None and dry.counts == {"mails": 3, "logs": 5}
    assert smtp.messages == [] and world.marked()["processed"] == set()

    code, ctx = run_job(SPEC, s)
    assert code == EXIT_OK and ctx is not None and ctx.counts == {"mails": 3, "logs": 5}
    mails = {(m.recipients, str(m.message["Subject"])): m for m in smtp.messages}
    e0, e1 = world.emails[r0], world.emails[r1]
    assert sorted(mails) == sorted(
        [((e0,), "WEB-1 Fix the login"), ((e0,), "WEB-2 Second issue"), ((e1,), "WEB-2 Second issue")]
    )
    mail = mails[((e0,), "WEB-1 Fix the login")].message
    assert mail["To"] == e0 and mail["Message-ID"].strip().endswith(".digest@mailer.plane.so>")
    html, plain = part(mail, "text/html"), part(mail, "text/plain")
    # Links from the issue's stored origin; issue 2 has none, so WEB_URL.
    assert world.url(1, ORIGIN) in html and WEB not in html
    assert f"{ORIGIN}/{world.slug}/settings/account/notifications/" in html
    assert world.url(2, WEB) in part(mails[((e1,), "WEB-2 Second issue")].message, "text/html")
    # Both actors, their de-duplicated values; the text part is the HTML's text.
    for shown in ("Ada", "Bob", "high", "urgent", "Done", "WEB-1"):
        assert shown in html and shown in plain
    assert "<p>" not in plain and "<a " not in plain
    # Exactly the logs of the mails sent, nothing else.
    assert world.marked()["sent"] == set(first + second + other)
    assert world.marked()["processed"] == set(first + second + other)
    assert world.digests() == ["sent"] * 3

    code, again = run_job(SPEC, s)
    assert code == EXIT_OK and again is not None and not any(again.counts.values())
    assert len(smtp.messages) == 3 and not set(untouched) & world.marked()["processed"]


def test_plane_template_gets_plane_context(settings, world, smtp: EmbeddedSMTP, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    template = tmp_path / "emails" / "notifications" / "issue-updates.html"
    template.parent.mkdir(parents=True)
    template.write_text(
        "<p>{{ issue.issue_identifier }}|{{ issue.name }}|{{ issue_url }}|{{ project_url }}|{{ workspace }}"
        "|{{ project }}|{{ receiver.email }}|{{ actors_involved }}|{{ summary }}|{{ entity_type }}</p>"
        "{% for u in data %}<p>{{ u.actor_detail.first_name }}@{{ u.activity_time }}"
        ":{{ u.changes.priority.new_value|join:',' }}</p>{% endfor %}"
        "{% for c in comments %}<p>C:{{ c.actor_comments.new_value.0|safe }}</p>{% endfor %}"
    )
    r0 = world.receivers[0]
    first = datetime.now(UTC) - timedelta(minutes=3)
    world.log(r0, 1, "priority", "high", minutes_ago=3)
    world.log(r0, 1, "priority", "urgent", minutes_ago=1)
    mention = f'<p>hi <mention-component entity_identifier="{world.other_actor}"></mention-component></p>'
    world.log(r0, 1, "mention", mention, actor=world.other_actor)
    code, _ = run_job(SPEC, mail_settings(settings, smtp.port, plane_templates_dir=str(tmp_path)))
    assert code == EXIT_OK
    [mail] = smtp.messages
    html = part(mail.message, "text/html")
    project_url = f"{ORIGIN}/{world.slug}/projects/{world.project}/issues/"
    assert (
        f"WEB-1|Fix\x01 the\x1f login\x7f\x9f|{project_url}{world.issues[1]}|{project_url}|{world.slug}"
        f"|Web App|{world.emails[r0]}|2|Updates were made to the issue by|issue"
    ) in html.replace("&#x27;", "'")
    # The actor's first activity's time (Plane's create_payload kept the last one: bug 6).
    assert f"Ada@{first:%H:%M %p}:high,urgent" in html
    assert "C:<p>hi @bob</p>" in html


def test_two_concurrent_runs_send_each_mail_once(settings, world) -> None:  # type: ignore[no-untyped-def]
    logs = [world.log(r, n, "priority", "high") for r in world.receivers for n in (1, 2)]
    with SlowSMTP(delay=0.3) as server:
        s = mail_settings(settings, server.port)
        # Both call the job itself, without the runtime's job lock: the pair locks alone must hold.
        contexts = [
            JobContext(name=SPEC.name, settings=s, engine=world.engine, dry_run=False, now=datetime.now(UTC))
            for _ in range(2)
        ]
        threads = [threading.Thread(target=email_digest.run, args=(ctx,)) for ctx in contexts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(ctx.counts["mails"] for ctx in contexts), [c.counts for c in contexts]  # both worked
        assert sum(ctx.counts["mails"] for ctx in contexts) == 6
        assert set(by_pair(server.messages).values()) == {1} and len(server.messages) == 6
    assert world.marked()["sent"] == set(logs) and world.digests() == ["sent"] * 6


def test_killed_after_the_server_took_the_mail_it_is_not_sent_again(settings, world, smtp) -> None:  # type: ignore[no-untyped-def]
    r0 = world.receivers[0]
    logs = [world.log(r0, 1, "priority", "high"), world.log(r0, 1, "state", "Done")]
    with SlowSMTP(delay=30) as held:
        env = env_for(mail_settings(settings, held.port)) | {"LOG_LEVEL": "WARNING"}
        command = [sys.executable, "-m", "shared.cli.main", "job", SPEC.name]
        job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not held.messages:  # the server has the mail; the job waits for its reply
                assert time.monotonic() < deadline and job.poll() is None, "no mail reached the server"
                time.sleep(0.02)
        finally:
            job.kill()
            job.wait(10)
    assert world.digests() == ["sending"] and world.marked()["sent"] == set()

    later = world.log(r0, 1, "labels", "bug", minutes_ago=0.01)
    code, ctx = run_job(SPEC, mail_settings(settings, smtp.port))
    assert code == EXIT_OK and ctx is not None
    # The taken mail is settled without a second copy; the log that came after goes in a new one.
    assert ctx.counts == {"presumed_sent": 1, "mails": 1, "logs": 1}
    assert world.marked()["sent"] == {*logs, later}
    assert world.digests() == ["presumed_sent", "sent"]
    [new] = smtp.messages
    assert "bug" in part(new.message, "text/html") and "Done" not in part(new.message, "text/html")


def test_marking_failed_after_the_send_is_settled_without_a_second_mail(
    settings, world, smtp: EmbeddedSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    logs = [world.log(world.receivers[0], 1, "priority", "high")]
    real = email_digest._mark_sent

    def fail_once(*args: Any) -> None:
        monkeypatch.setattr(email_digest, "_mark_sent", real)
        raise RuntimeError("database went away")

    monkeypatch.setattr(email_digest, "_mark_sent", fail_once)
    s = mail_settings(settings, smtp.port)
    assert run_job(SPEC, s)[0] == EXIT_FAILED
    assert len(smtp.messages) == 1 and world.marked()["sent"] == set()
    code, ctx = run_job(SPEC, s)
    assert code == EXIT_OK and ctx is not None and ctx.counts == {"presumed_sent": 1}
    assert len(smtp.messages) == 1 and world.marked()["sent"] == set(logs)


def test_smtp_down_marks_nothing_and_the_next_run_sends_the_backlog(settings, world, smtp) -> None:  # type: ignore[no-untyped-def]
    logs = [world.log(r, 1, "priority", "high") for r in world.receivers]
    code, _ = run_job(SPEC, mail_settings(settings, free_port()))  # nothing listens there
    assert code == EXIT_FAILED
    assert world.marked() == {"sent": set(), "processed": set()} and world.digests() == []

    s = mail_settings(settings, smtp.port)
    assert run_job(SPEC, s)[0] == EXIT_OK
    assert run_job(SPEC, s)[0] == EXIT_OK
    assert set(by_pair(smtp.messages).values()) == {1} and len(smtp.messages) == 3
    assert world.marked()["sent"] == set(logs)


def test_a_refused_mail_leaves_its_logs_and_only_the_sent_mail_is_marked(settings, world, smtp) -> None:  # type: ignore[no-untyped-def]
    r0 = world.receivers[0]
    sent = [world.log(r0, 1, "priority", "high")]
    refused = [world.log(r0, 2, "priority", "low"), world.log(r0, 2, "state", "Todo")]
    with SlowSMTP(refuse="WEB-2") as server:
        code, ctx = run_job(SPEC, mail_settings(settings, server.port))
    assert code == EXIT_OK and ctx is not None and ctx.counts == {"mails": 1, "logs": 1, "refused_mails": 1}
    # Plane marked every log of the receiver sent after any one mail (bug 5); here only the mail's own.
    assert world.marked() == {"sent": set(sent), "processed": set(sent)}
    assert world.digests() == ["sent"]

    code, ctx = run_job(SPEC, mail_settings(settings, smtp.port))
    assert code == EXIT_OK and ctx is not None and ctx.counts == {"mails": 1, "logs": 2}
    assert [str(m.message["Subject"]) for m in smtp.messages] == ["WEB-2 Second issue"]
    assert world.marked()["sent"] == set(sent + refused)


def test_a_stack_whose_receiver_has_no_address_is_processed_not_sent(settings, world, smtp) -> None:  # type: ignore[no-untyped-def]
    with world.engine.begin() as conn:
        nobody = insert_user(conn, email=None)
    log = world.log(nobody, 1, "priority", "high")
    code, ctx = run_job(SPEC, mail_settings(settings, smtp.port))
    assert code == EXIT_OK and ctx is not None and ctx.counts == {"skipped_mails": 1, "skipped_logs": 1}
    assert smtp.messages == [] and world.marked() == {"sent": set(), "processed": {log}}


def test_windows_of_five_minutes_and_a_skipped_run_whose_logs_the_next_one_sends(  # type: ignore[no-untyped-def]
    settings, world, smtp: EmbeddedSMTP
) -> None:
    """R21's timeline: changes at t=0..4 min become one mail at the t=5 run, containing every one
    of them. The t=10 run never starts (Kubernetes skipped it: past startingDeadlineSeconds), so
    the t=15 run sends its backlog (t=7 and t=11) as one mail, and leaves t=16 to the next."""
    r0 = world.receivers[0]
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    ago = lambda t: (datetime.now(UTC) - (base + timedelta(minutes=t))).total_seconds() / 60  # noqa: E731
    window = [world.log(r0, 1, "priority", f"p{t}", minutes_ago=ago(t)) for t in range(5)]
    backlog = [world.log(r0, 1, "state", f"s{t}", minutes_ago=ago(t)) for t in (7, 11)]
    later = world.log(r0, 1, "state", "s16", minutes_ago=ago(16))
    s = mail_settings(settings, smtp.port)

    code, first = run_job(SPEC, s, scheduled_for=base + timedelta(minutes=5))
    assert code == EXIT_OK and first is not None and first.counts == {"mails": 1, "logs": 5}
    assert world.marked()["sent"] == set(window)
    html = part(smtp.messages[0].message, "text/html")
    assert all(f"p{t}" in html for t in range(5))

    code, third = run_job(SPEC, s, scheduled_for=base + timedelta(minutes=15))
    assert code == EXIT_OK and third is not None and third.counts == {"mails": 1, "logs": 2}
    assert world.marked()["sent"] == set(window + backlog) and later not in world.marked()["processed"]
    html = part(smtp.messages[1].message, "text/html")
    assert "s7" in html and "s11" in html and "s16" not in html
    assert len(smtp.messages) == 2


def test_smtp_settings_come_from_planes_instance_configuration(settings, world, smtp: EmbeddedSMTP) -> None:  # type: ignore[no-untyped-def]
    """With SKIP_ENV_VAR=1 (Plane's default) the EMAIL_* rows Plane's admin wrote win over the
    environment: the environment here names a port nobody listens on, the rows the real server."""
    world.log(world.receivers[0], 1, "priority", "high")
    with world.engine.begin() as conn:
        rows = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "EMAIL_USE_TLS": "0",
                "EMAIL_FROM": "Plane Admin <admin@plane.example>"}  # fmt: skip
        for key, value in rows.items():
            insert_one(
                conn, "instance_configurations", key=key, value=value, is_encrypted=False, category="SMTP"
            )
    s = mail_settings(settings, free_port())
    code, ctx = run_job(SPEC, s)
    assert code == EXIT_OK and ctx is not None and ctx.counts == {"mails": 1, "logs": 1}
    [mail] = smtp.messages
    assert mail.message["From"] == "Plane Admin <admin@plane.example>"


def test_two_processes_share_the_pairs_and_each_mail_goes_once(  # type: ignore[no-untyped-def]
    settings, world, smtp: EmbeddedSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = [world.log(r, n, "priority", "high") for r in world.receivers for n in (1, 2)]
    monkeypatch.setattr(email_digest, "MIN_PAIRS_PER_PROCESS", 2)  # 6 pairs: 3 for the worker
    started: list[int] = []
    real_start = email_digest.email_digest_workers.start

    def start(*args: Any) -> Any:
        worker = real_start(*args)
        started.append(worker.process.pid)
        return worker

    monkeypatch.setattr(email_digest.email_digest_workers, "start", start)
    # SMTP down: the worker's failure is the run's, and nobody marks anything.
    down = mail_settings(settings, free_port(), email_digest_processes=2)
    assert run_job(SPEC, down)[0] == EXIT_FAILED and len(started) == 1
    assert world.marked() == {"sent": set(), "processed": set()} and world.digests() == []

    code, ctx = run_job(SPEC, mail_settings(settings, smtp.port, email_digest_processes=2))
    assert code == EXIT_OK and ctx is not None and len(started) == 2
    assert ctx.counts == {"mails": 6, "logs": 6}  # the worker's counts joined the run's
    assert set(by_pair(smtp.messages).values()) == {1} and len(smtp.messages) == 6
    assert world.marked()["sent"] == set(logs) and world.digests() == ["sent"] * 6
