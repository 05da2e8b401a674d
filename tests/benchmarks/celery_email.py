"""Plane's `stack_email_notification` and `send_email_notification` on Celery: the baseline of
`bench_email_digest`.

Written from Plane's `bgtasks/email_notification_task.py` (spec §4.1, §5.3), one SQL statement per
Django ORM call, in Plane's order:
- `stack_email_notification` (the beat task, run by the worker as beat would have it): every
  unprocessed log (`.values()`, all columns, ordered by receiver), the receivers, then for each
  receiver Plane's scan of the whole list for that receiver's logs (quadratic, as in Plane), one
  `send_email_notification.delay()` per (receiver, issue) with the receiver's ids of every issue,
  and one UPDATE of `processed_at` over every picked id at the end.
- `send_email_notification`: the Redis lock (`SET NX EX 300`) and two GETs of the issue's origin,
  Plane's `create_payload` (its quirks kept), `get_email_configuration` (one SELECT of
  `instance_configurations`, SKIP_ENV_VAR=1 as Plane defaults), the receiver, the issue, each
  actor, each mentioned user, the lazy `issue.project` and `project.workspace`, Django's
  `render_to_string` and Plane's plain-text rendering, Django's SMTP backend through
  `get_connection` and `EmailMultiAlternatives.send()` (so one SMTP connection per mail: open,
  EHLO, MAIL, RCPT, DATA, QUIT), then the UPDATE of `sent_at` over every id it was given, and the
  lock's DEL.

The mail is rendered from Plane's own template when PLANE_TEMPLATES_DIR names Plane's templates
folder (as ours does); otherwise from `BUILTIN_TEMPLATE` below, a Django template with the content
of our built-in mail (cronjobs/email_digest_mail.py), so both sides send comparable mails.

Stand-ins, all faithful-or-faster, so the baseline is if anything optimistic for Celery:
- raw psycopg2, one autocommit connection per worker process kept for its life (Plane: CONN_MAX_AGE
  0, a new connection per task), no ORM model instantiation;
- Redis over one kept connection per process with a minimal RESP client (Plane's
  `redis_instance()` builds a new client, so a new connection, per call); without a Redis at
  BENCH_REDIS (host:port, empty: none) the lock is skipped and the origin comes from BENCH_ORIGIN;
- mentions parsed with lexbor (selectolax, C) instead of BeautifulSoup's html.parser.

Environment read by the worker: `BENCH_DATABASE_URL` (required), `BENCH_BROKER_URL`,
`BENCH_CELERY_QUEUE`, `BENCH_REDIS`, `BENCH_ORIGIN`, `PLANE_TEMPLATES_DIR`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg2.extras
from selectolax.lexbor import LexborHTMLParser

from tests.benchmarks import celery_worker as worker
from tests.benchmarks.celery_worker import connection, generate_plain_text_from_html, plane_app

app = plane_app("plane_bench_email")
psycopg2.extras.register_uuid()
log = logging.getLogger("plane.worker")
exception_log = logging.getLogger("plane.exception")

TEMPLATE = "emails/notifications/issue-updates.html"
# The content of our built-in mail (email_digest_mail._builtin_html), as a Django template.
BUILTIN_TEMPLATE = """<html><body>
<p><b>{{ issue.issue_identifier }} updates</b></p>
<p>{{ workspace }}/<a href="{{ project_url }}">{{ project }}</a>/<a href="{{ issue_url }}">{{ issue.issue_identifier }}</a>: {{ issue.name }}</p>
{% for update in data %}<p>{{ update.actor_detail.first_name }} {{ update.actor_detail.last_name }} {{ update.activity_time }}</p><ul>
{% for field, values in update.changes.items %}<li>{{ field }}: {{ values.old_value|join:", " }} &rarr; {{ values.new_value|join:", " }}</li>
{% endfor %}</ul>
{% endfor %}{% for comment in comments %}<p>{{ comment.actor_detail.first_name }} {{ comment.actor_detail.last_name }}:</p>
{% for value in comment.actor_comments.new_value %}<div>{{ value|safe }}</div>
{% endfor %}{% endfor %}<p><a href="{{ issue_url }}">View issue</a></p>
<p>This email was sent to {{ receiver.email }}. <a href="{{ user_preference }}">Manage your email preferences</a>.</p>
</body></html>"""  # noqa: E501

# --- database, Redis, Django: one of each per worker process ---


def _cur() -> Any:
    return connection("celery-email-bench").cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def _one(sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    with _cur() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def _get(sql: str, params: tuple[Any, ...]) -> dict[str, Any]:
    """Model.objects.get: DoesNotExist when there is no row."""
    row = _one(sql, params)
    if row is None:
        raise DoesNotExist(sql)
    return row


class DoesNotExist(Exception):
    pass


class _Redis:
    """The four commands the task uses, over one connection (RESP 2)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.file = self.sock.makefile("rb")

    def command(self, *args: str | bytes) -> Any:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.file.read(size + 2)[:-2]
        if kind == b":":
            return int(rest)
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        return rest.decode()  # +OK


_redis: list[_Redis | None] = []


def redis() -> _Redis | None:
    if not _redis:
        address = os.environ.get("BENCH_REDIS", "")
        _redis.append(_Redis(address) if address else None)
    return _redis[0]


# --- stack_email_notification (§4.1) ---

PICK = (
    "SELECT * FROM email_notification_logs WHERE deleted_at IS NULL AND processed_at IS NULL "
    "ORDER BY receiver_id"
)
MARK_PROCESSED = "UPDATE email_notification_logs SET processed_at = %s WHERE id IN %s"


def _now() -> datetime:
    return datetime.now(UTC)


@app.task
def stack_email_notification() -> None:
    with _cur() as cur:
        cur.execute(PICK)
        email_notifications = cur.fetchall()
    receivers = list({str(n.get("receiver_id")) for n in email_notifications})
    processed_notifications = []
    for receiver_id in receivers:
        # Plane scans every picked log once per receiver.
        receiver_notifications = [n for n in email_notifications if str(n.get("receiver_id")) == receiver_id]
        payload: dict[Any, dict[str, list[Any]]] = {}
        email_notification_ids = []
        for n in receiver_notifications:
            payload.setdefault(n.get("entity_identifier"), {}).setdefault(
                str(n.get("triggered_by_id")), []
            ).append(n.get("data"))
            processed_notifications.append(n.get("id"))
            email_notification_ids.append(n.get("id"))
        for issue_id, notification_data in payload.items():
            send_email_notification.delay(
                issue_id=issue_id,
                notification_data=notification_data,
                receiver_id=receiver_id,
                email_notification_ids=email_notification_ids,
            )
    if processed_notifications:
        with _cur() as cur:
            cur.execute(MARK_PROCESSED, (_now(), tuple(processed_notifications)))


# --- send_email_notification (§5.3) ---

USER = "SELECT * FROM users WHERE id = %s LIMIT 21"
ISSUE = "SELECT * FROM issues WHERE id = %s AND deleted_at IS NULL LIMIT 21"
PROJECT = "SELECT * FROM projects WHERE id = %s LIMIT 21"
WORKSPACE = "SELECT * FROM workspaces WHERE id = %s LIMIT 21"
MARK_SENT = "UPDATE email_notification_logs SET sent_at = %s WHERE id IN %s"


def create_payload(notification_data: dict[str, list[Any]]) -> dict[str, Any]:
    """Plane's create_payload, its quirks kept: the `"actor_id"` literal test, so the last activity
    time wins; values str()-ed."""
    data: dict[str, Any] = {}
    for actor_id, changes in notification_data.items():
        for change in changes:
            issue_activity = change.get("issue_activity")
            if not issue_activity:
                continue
            field = issue_activity.get("field")
            for side in ("old_value", "new_value"):
                value = str(issue_activity.get(side))
                if value:
                    values = data.setdefault(actor_id, {}).setdefault(field, {}).setdefault(side, [])
                    if value not in values:
                        values.append(value)
            if not data.get("actor_id", {}).get("activity_time", False):
                at = datetime.fromisoformat(issue_activity.get("activity_time").rstrip("Z"))
                data[actor_id]["activity_time"] = str(at.strftime("%Y-%m-%d %H:%M:%S"))
    return data


def process_mention(mention_component: str) -> str:
    parser = LexborHTMLParser(mention_component)
    for mention in parser.css("mention-component"):
        user = _get(USER, (mention.attributes.get("entity_identifier"),))
        mention.replace_with(f"@{user['display_name']}")
    body = parser.body
    return body.inner_html if body is not None else ""


def process_html_content(content: list[str] | None) -> list[str] | None:
    return None if content is None else [process_mention(c) for c in content]


def _actor_detail(base_api: str, actor: dict[str, Any]) -> dict[str, str]:
    # User.avatar_url: the asset path, else the avatar field (Plane prefixes it whatever it is).
    asset = actor.get("avatar_asset_id")
    avatar = f"/api/assets/v2/static/{asset}/" if asset else actor.get("avatar")
    return {
        "avatar_url": f"{base_api}{avatar}",
        "first_name": actor["first_name"],
        "last_name": actor["last_name"],
    }


@app.task
def send_email_notification(
    issue_id: Any,
    notification_data: dict[str, list[Any]],
    receiver_id: str,
    email_notification_ids: list[Any],
) -> None:
    ids_str = "_".join(str(i) for i in sorted(email_notification_ids))
    lock_id = f"send_email_notif_{issue_id}_{receiver_id}_{ids_str}"
    ri = redis()
    try:
        if ri is not None and not ri.command("SET", lock_id, "true", "NX", "EX", "300"):
            log.info("Duplicate email received skipping")
            return
        if ri is not None:
            base_api = ri.command("GET", str(issue_id)).decode() if ri.command("GET", str(issue_id)) else None
        else:
            base_api = os.environ.get("BENCH_ORIGIN")
        if not base_api:
            return
        _send(issue_id, notification_data, receiver_id, email_notification_ids, base_api, ri, lock_id)
    except DoesNotExist:
        if ri is not None:
            ri.command("DEL", lock_id)
    except Exception as e:
        exception_log.exception(e)
        if ri is not None:
            ri.command("DEL", lock_id)


def _send(
    issue_id: Any,
    notification_data: dict[str, list[Any]],
    receiver_id: str,
    email_notification_ids: list[Any],
    base_api: str,
    ri: _Redis | None,
    lock_id: str,
) -> None:
    worker.configure_django({TEMPLATE: BUILTIN_TEMPLATE})
    from django.template.loader import render_to_string

    data = create_payload(notification_data)
    config = worker.email_configuration(_cur())
    receiver = _get(USER, (receiver_id,))
    issue = _get(ISSUE, (str(issue_id),))
    project: dict[str, Any] | None = None
    workspace: dict[str, Any] | None = None

    def issue_project() -> dict[str, Any]:  # the lazy foreign keys, each fetched once
        nonlocal project
        project = project or _get(PROJECT, (issue["project_id"],))
        return project

    def project_workspace() -> dict[str, Any]:
        nonlocal workspace
        workspace = workspace or _get(WORKSPACE, (issue_project()["workspace_id"],))
        return workspace

    template_data, comments, actors_involved = [], [], []
    for actor_id, changes in data.items():
        actor = _get(USER, (actor_id,))
        comment = changes.pop("comment", False)
        mention = changes.pop("mention", False)
        actors_involved.append(actor_id)
        if comment:
            comments.append({"actor_comments": comment, "actor_detail": _actor_detail(base_api, actor)})
        if mention:
            mention["new_value"] = process_html_content(mention.get("new_value"))
            mention["old_value"] = process_html_content(mention.get("old_value"))
            comments.append({"actor_comments": mention, "actor_detail": _actor_detail(base_api, actor)})
        activity_time = changes.pop("activity_time")
        formatted_time = datetime.strptime(activity_time, "%Y-%m-%d %H:%M:%S").strftime("%H:%M %p")
        if changes:
            identifier = f"{issue_project()['identifier']}-{issue['sequence_id']}"
            template_data.append(
                {
                    "actor_detail": _actor_detail(base_api, actor),
                    "changes": changes,
                    "issue_details": {"name": issue["name"], "identifier": identifier},
                    "activity_time": str(formatted_time),
                }
            )
    identifier = f"{issue_project()['identifier']}-{issue['sequence_id']}"
    name = re.sub(r"[\x00-\x1F\x7F-\x9F]", "", issue["name"])
    slug = project_workspace()["slug"]
    issue_url = f"{base_api}/{slug}/projects/{issue_project()['id']}/issues/{issue['id']}"
    context = {
        "data": template_data,
        "summary": "Updates were made to the issue by",
        "actors_involved": len(set(actors_involved)),
        "issue": {"issue_identifier": identifier, "name": issue["name"], "issue_url": issue_url},
        "receiver": {"email": receiver["email"]},
        "issue_url": issue_url,
        "project_url": f"{base_api}/{slug}/projects/{issue_project()['id']}/issues/",
        "workspace": str(slug),
        "project": str(issue_project()["name"]),
        "user_preference": f"{base_api}/{slug}/settings/account/notifications/",
        "comments": comments,
        "entity_type": "issue",
    }
    html_content = render_to_string(TEMPLATE, context)
    text_content = generate_plain_text_from_html(html_content)
    try:
        worker.send_mail(config, f"{identifier} {name}", text_content, html_content, receiver["email"])
        log.info("Email Sent Successfully")
        if email_notification_ids:  # Django's pk__in=[] runs no query
            with _cur() as cur:
                cur.execute(MARK_SENT, (_now(), tuple(email_notification_ids)))
    except Exception as e:
        exception_log.exception(e)
    if ri is not None:
        ri.command("DEL", lock_id)


# --- worker process ---


def start_worker(
    database_url: str, concurrency: int, env: dict[str, str], ready_timeout: float = 60.0
) -> subprocess.Popen:
    """A prefork worker on a fresh queue, this process's sends routed to it."""
    queue = f"bench-email-{uuid.uuid4().hex[:12]}"
    return worker.start_worker(
        app, __name__, queue, database_url, concurrency, env=env, ready_timeout=ready_timeout
    )


def stop_worker(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    worker.stop_worker(app, proc, timeout)
