"""Samples of email-digest: stacks of unsent e-mail logs become one mail per receiver and issue."""

from __future__ import annotations

from sqlalchemy import text

from cronjobs.samples._seed import PAUSE_ENV, ids, scheduled_time, scope
from shared.conformance import JobSamples, SampleWorld
from shared.testing.plane_rows import insert_many, insert_one, insert_user

RECEIVERS = 4
ORIGIN = "https://plane.example"
ACTIVITY = ("jsonb_build_object('issue', jsonb_build_object('id', CAST(:issue AS text)),"
            " 'issue_activity', jsonb_build_object("
            " 'field', CASE WHEN g % 2 = 0 THEN 'priority' ELSE 'state' END,"
            " 'old_value', 'low', 'new_value', 'v' || g, 'actor', CAST(:actor AS text),"
            " 'activity_time', to_char(CAST(:at AS timestamptz) - g * interval '1 minute',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')))")  # fmt: skip
LOG = {"receiver_id": ":receiver", "triggered_by_id": ":actor", "entity_identifier": ":issue",
       "entity_name": "'issue'", "entity": "''", "data": ACTIVITY,
       "created_at": "CAST(:at AS timestamptz) - g * interval '1 minute'"}  # fmt: skip
SENT = text("SELECT id FROM email_notification_logs WHERE sent_at IS NOT NULL")
UNPROCESSED = "SELECT id FROM email_notification_logs WHERE processed_at IS NULL"


def email_digest(world: SampleWorld) -> JobSamples:
    """Four receivers with unsent logs on two issues (one with a stored origin, one that falls back
    to WEB_URL): eight mails, each marking exactly its own logs sent. A log created after the run's
    time, a soft-deleted one and one sent earlier are left as they are.

    Effects: the mails received as (recipient, subject, the issue link it holds), duplicates
    visible; the logs marked sent; the logs still unprocessed. Each mail is one unit, with
    JOB_BATCH_PAUSE_MS between them, so a kill lands between mails or between a mail's acceptance
    and its marking (which the next run settles without a second mail)."""
    at = scheduled_time()
    per_pair = max(1, world.size // (RECEIVERS * 2))
    with world.engine.begin() as conn:
        s = scope(conn, name="Digest", identifier="DIG")
        actor = insert_user(conn, first_name="Ada", last_name="Actor", display_name="ada")
        issues = {
            n: insert_one(conn, "issues", name=f"Issue\x07 {n}", sequence_id=n, priority="none",
                          project_id=s.project, workspace_id=s.workspace)
            for n in (1, 2)
        }  # fmt: skip
        conn.execute(
            text("INSERT INTO plane_workers.issue_origins (issue_id, origin) VALUES (:i, :o)"),
            {"i": issues[1], "o": ORIGIN},
        )
        slug = conn.scalar(text("SELECT slug FROM workspaces WHERE id = :w"), {"w": s.workspace})
        receivers = [insert_user(conn) for _ in range(RECEIVERS)]
        emails = dict(
            conn.execute(text("SELECT id, email FROM users WHERE id = ANY(:ids)"), {"ids": receivers}).all()
        )
        for receiver in receivers:
            for issue in issues.values():
                params = {"receiver": receiver, "actor": actor, "issue": issue, "at": at}
                insert_many(conn, "email_notification_logs", per_pair, LOG, params)
        due = ids(conn, "SELECT id FROM email_notification_logs")
        kept = {"receiver": receivers[0], "actor": actor, "issue": issues[1], "at": at}
        later = {**LOG, "created_at": "CAST(:at AS timestamptz) + interval '1 hour'"}
        insert_many(conn, "email_notification_logs", 1, later, kept)
        insert_many(conn, "email_notification_logs", 1, {**LOG, "deleted_at": ":at"}, kept)
        insert_many(
            conn, "email_notification_logs", 1, {**LOG, "processed_at": ":at", "sent_at": ":at"}, kept
        )
        sent_before = ids(conn, "SELECT id FROM email_notification_logs WHERE sent_at IS NOT NULL")
        unprocessed = [i for i in ids(conn, UNPROCESSED) if i not in due]

    def link(n: int) -> str:
        origin = ORIGIN if n == 1 else world.settings.web_url.rstrip("/")
        return f"{origin}/{slug}/projects/{s.project}/issues/{issues[n]}"

    def effects() -> dict[str, list[object]]:
        mails = []
        for mail in world.mailbox.messages:
            html = next(p for p in mail.message.walk() if p.get_content_type() == "text/html")
            body = html.get_payload(decode=True).decode()
            shown = next((link(n) for n in issues if link(n) in body), "")
            mails.append((",".join(mail.recipients), str(mail.message["Subject"]), shown))
        return {
            "mails": sorted(mails),
            "sent": ids(world.engine, SENT.text),
            "unprocessed": ids(world.engine, UNPROCESSED),
        }

    expected = {
        "mails": sorted((emails[r], f"DIG-{n} Issue {n}", link(n)) for r in receivers for n in issues),
        "sent": sorted(due + sent_before),
        "unprocessed": unprocessed,
    }
    # Mail units are cheap: pause after each so that a kill can land between them.
    return JobSamples(effects=effects, expected=expected, env=PAUSE_ENV, scheduled_for=at)
