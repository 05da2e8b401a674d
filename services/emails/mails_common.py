"""What every transactional mail shares: the Mail, the MailType that builds it, Plane's link base
and the choice between Plane's own template and our built-in HTML.

Plane renders each mail from a template and sends `generate_plain_text_from_html` of it as the
text part (plane-bgtasks §3.2). Here the context handed to the template has Plane's keys and
values exactly, so Plane's file renders the same when PLANE_TEMPLATES_DIR points at it; without
it (or when it is broken) a small built-in HTML carries the same content, every link and code
shown as text so that the text part has them too.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from shared import plane_templates
from shared.kafka.handler import PermanentError
from shared.mail.message import Attachment, header_text, plain_text
from shared.settings import Settings


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    html: str
    text: str  # Plane's plain-text rendering of the html (shared.mail.message.plain_text)
    attachments: tuple[Attachment, ...] = ()


class NothingToSend(Exception):
    """The mail's subject is gone (invite deleted, unknown user, no e-mail address): Plane returned
    silently. The consumer logs the reason and counts it; it is not retried or dead-lettered.

    The reason is logged: it names ids, never a token, a code or an address."""


Build = Callable[[Connection, Settings, Mapping[str, Any]], Mail]


@dataclass(frozen=True)
class MailType:
    name: str  # e.g. "magic_link"; event type "plane.email.magic_link.v1"
    plane_task: str  # the Celery task it replaces
    plane_args: tuple[str, ...]  # Plane's task parameters in order (for a Celery bridge)
    template: str  # Plane's template file, e.g. "emails/auth/magic_signin.html"
    build: Build
    recipient: str = "email"  # the data field naming the recipient (address or user id)
    # False: `build` never touches its connection, so the consumer needs no savepoint around it.
    reads_database: bool = True

    @property
    def event_type(self) -> str:
        return f"plane.email.{self.name}.v1"

    @property
    def key_field(self) -> str:
        return self.recipient


def site_of(settings: Settings, data: Mapping[str, Any]) -> str:
    """The base Plane puts before its links: the event's `current_site`, else WEB_URL. Every
    Plane link is `current_site + "/..."`, so a trailing slash would double; it is dropped."""
    site = data.get("current_site") or settings.web_url
    return str(site).rstrip("/")


def finish(
    settings: Settings,
    to: str,
    subject: str,
    template: str,
    context: Mapping[str, Any],
    builtin: Sequence[str],
) -> Mail:
    """The Mail: Plane's template rendered from `context` when there is one that renders, else
    `builtin` (paragraphs of HTML, already escaped) in a bare page; the text part from either."""
    body = plane_templates.render(settings, template, context)
    if body is None:
        body = "<html><body>\n" + "\n\n".join(f"<p>{part}</p>" for part in builtin) + "\n</body></html>"
    return Mail(to=to, subject=header_text(subject), html=body, text=plain_text(body))


def e(value: object) -> str:
    return html.escape(str(value))


def link(url: str) -> str:
    """A link whose address is also its text, so the text part keeps it."""
    return f'<a href="{e(url)}">{e(url)}</a>'


def footer(email: str, why: str) -> str:
    return f"This mail was sent to {e(email)}. {e(why)}"


def one(rows: Sequence[Any], what: str) -> Any:
    """The single row Django's `.get()` would return; none → Plane's silent return."""
    if not rows:
        raise NothingToSend(f"{what} does not exist")
    if len(rows) > 1:
        # MultipleObjectsReturned in Plane: logged, never sent, and no retry changes that.
        raise PermanentError(f"{what} matches {len(rows)} rows")
    return rows[0]


_USER_BY_ID = text("SELECT id, email, first_name, display_name FROM users WHERE id = CAST(:id AS uuid)")
_USER_BY_EMAIL = text("SELECT id, email, first_name, display_name FROM users WHERE email = :email")


def user_by_id(conn: Connection, user_id: str, role: str) -> Any:
    """`User.objects.get(pk=...)` (users are never soft-deleted)."""
    return one(conn.execute(_USER_BY_ID, {"id": user_id}).all(), f"{role} user {user_id}")


def user_by_email(conn: Connection, email: str, role: str) -> Any:
    """`User.objects.get(email=...)`: exact, case-sensitive, as Django's default lookup."""
    return one(conn.execute(_USER_BY_EMAIL, {"email": email}).all(), f"{role} user (by address)")


def called(user: Any) -> str:
    """Plane's `first_name or display_name or email` for a person in a subject."""
    return str(user.first_name or user.display_name or user.email)


def address_of(user: Any, role: str) -> str:
    if not user.email:
        raise NothingToSend(f"{role} user {user.id} has no e-mail address")
    return str(user.email)
