"""Plane's `magic_link` and `workspace_invitation` tasks on Celery: the baseline of `bench_mail_tasks`.

Written from Plane's `bgtasks/magic_link_code_task.py` and `bgtasks/workspace_invitation_task.py`
(spec §3.2, §5.20), one SQL statement per Django ORM call, in Plane's order:
- `magic_link(email, key, token)`: `get_email_configuration` (one SELECT of
  `instance_configurations`, SKIP_ENV_VAR=1 as Plane defaults), `render_to_string` of
  `emails/auth/magic_signin.html`, Plane's plain-text rendering, then Django's SMTP backend
  (`get_connection` + `EmailMultiAlternatives.send()`): a new SMTP connection per mail (connect,
  EHLO, MAIL, RCPT, DATA, QUIT).
- `workspace_invitation(email, workspace_id, token, current_site, inviter)`: the inviter by address,
  the workspace, the invite by token and address, the configuration, the render, the invite's
  `save()` (Django's UPDATE of every column, `message` = the text part, `updated_at` = now), then
  the send as above.

Both catch every exception and return, as Plane's tasks do (a mail that fails is missing at the
sink, which the benchmark counts).

The HTML is rendered from Plane's own template when PLANE_TEMPLATES_DIR names Plane's templates
folder (as ours does); otherwise from a Django template below with exactly the content of our
built-in mail (services/emails/mails_auth.py, mails_invitations.py), so both sides send mails of
the same size.

Stand-ins, faithful-or-faster, so the baseline is if anything optimistic for Celery: raw psycopg2
(no model instantiation) over one autocommit connection per worker process kept for its life
(Plane: CONN_MAX_AGE 0, a new connection per task).

Environment read by the worker: `BENCH_DATABASE_URL` (required), `BENCH_BROKER_URL`,
`BENCH_CELERY_QUEUE`, `PLANE_TEMPLATES_DIR`.
"""

from __future__ import annotations

import logging
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg2.extras

from tests.benchmarks import celery_worker as worker
from tests.benchmarks.celery_worker import connection, generate_plain_text_from_html, plane_app

app = plane_app("plane_bench_mail_tasks")
log = logging.getLogger("plane.worker")
exception_log = logging.getLogger("plane.exception")

MAGIC_SIGNIN = "emails/auth/magic_signin.html"
WORKSPACE_INVITATION = "emails/invitations/workspace_invitation.html"
# Our built-in mails (mails_common.finish: paragraphs joined by a blank line) as Django templates;
# Django's autoescape and html.escape give the same text for these values.
BUILTIN_TEMPLATES = {
    MAGIC_SIGNIN: (
        "<html><body>\n<p>Your Plane code to sign in:</p>\n\n<p><b>{{ code }}</b></p>\n\n"
        "<p>It is valid for 10 minutes.</p>\n\n<p>This mail was sent to {{ email }}. If you were "
        "not expecting this code, ignore this mail.</p>\n</body></html>"
    ),
    WORKSPACE_INVITATION: (
        "<html><body>\n<p>{{ first_name }} has invited you to join the workspace "
        "{{ workspace_name }} on Plane.</p>\n\n<p>Accept the invitation here:</p>\n\n"
        '<p><a href="{{ abs_url }}">{{ abs_url }}</a></p>\n\n<p>This mail was sent to {{ email }}. '
        "If you were not expecting this invitation, ignore this mail.</p>\n</body></html>"
    ),
}


# --- the database: Plane's ORM calls, one statement each ---


class DoesNotExist(Exception):
    pass


def _cur() -> Any:
    return connection("celery-mail-bench").cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def _get(sql: str, params: tuple[Any, ...]) -> dict[str, Any]:
    """Model.objects.get: DoesNotExist when there is no row (LIMIT 21, as Django asks)."""
    with _cur() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    if row is None:
        raise DoesNotExist(sql)
    return dict(row)


USER_BY_EMAIL = "SELECT * FROM users WHERE email = %s LIMIT 21"
WORKSPACE = "SELECT * FROM workspaces WHERE id = %s AND deleted_at IS NULL LIMIT 21"
INVITE = (
    "SELECT * FROM workspace_member_invites WHERE token = %s AND email = %s AND deleted_at IS NULL LIMIT 21"
)


def _save(table: str, row: dict[str, Any]) -> None:
    """Django's `save()` of a fetched row: an UPDATE of every column but the key, by the key."""
    columns = [c for c in row if c != "id"]
    assignments = ", ".join(f'"{c}" = %s' for c in columns)
    with _cur() as cur:
        cur.execute(
            f'UPDATE "{table}" SET {assignments} WHERE id = %s', [*(row[c] for c in columns), row["id"]]
        )


# --- rendering and sending, as Plane's tasks do ---


@app.task
def magic_link(email: str, key: str, token: str) -> None:
    try:
        worker.configure_django(BUILTIN_TEMPLATES)
        from django.template.loader import render_to_string

        config = worker.email_configuration(_cur())
        subject = f"Your unique Plane login code is {token}"
        html_content = render_to_string(MAGIC_SIGNIN, {"code": token, "email": email})
        text_content = generate_plain_text_from_html(html_content)
        worker.send_mail(config, subject, text_content, html_content, email)
        log.info("Email sent successfully.")
    except Exception as e:
        exception_log.exception(e)


@app.task
def workspace_invitation(email: str, workspace_id: str, token: str, current_site: str, inviter: str) -> None:
    try:
        worker.configure_django(BUILTIN_TEMPLATES)
        from django.template.loader import render_to_string

        user = _get(USER_BY_EMAIL, (inviter,))
        workspace = _get(WORKSPACE, (workspace_id,))
        invite = _get(INVITE, (token, email))
        abs_url = (
            f"{current_site}/workspace-invitations/?invitation_id={invite['id']}"
            f"&slug={workspace['slug']}&token={token}"
        )
        config = worker.email_configuration(_cur())
        name = user["first_name"] or user["display_name"] or user["email"]
        subject = f"{name} has invited you to join them in {workspace['name']} on Plane"
        context = {
            "email": email,
            "first_name": name,
            "workspace_name": workspace["name"],
            "abs_url": abs_url,
        }
        html_content = render_to_string(WORKSPACE_INVITATION, context)
        text_content = generate_plain_text_from_html(html_content)
        invite["message"] = text_content
        invite["updated_at"] = datetime.now(UTC)  # auto_now
        _save("workspace_member_invites", invite)
        worker.send_mail(config, subject, text_content, html_content, email)
        log.info("Email sent successfully")
    except DoesNotExist:
        return
    except Exception as e:
        exception_log.exception(e)


# --- worker process ---


def start_worker(
    database_url: str, concurrency: int, env: dict[str, str] | None = None, ready_timeout: float = 60.0
) -> subprocess.Popen:
    """A prefork worker on a fresh queue, this process's sends routed to it."""
    queue = f"bench-mail-{uuid.uuid4().hex[:12]}"
    return worker.start_worker(
        app, __name__, queue, database_url, concurrency, env=env, ready_timeout=ready_timeout
    )


def stop_worker(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    worker.stop_worker(app, proc, timeout)
