"""The issue-updates mail of one (receiver, issue) stack: Plane's send_email_notification context.

`build` turns a stack of email_notification_logs into the subject, both parts and the recipient.
The context has Plane's keys (plane-bgtasks §5.3) so Plane's `issue-updates.html` renders from it
when PLANE_TEMPLATES_DIR is set; otherwise a plain built-in HTML carries the same content.

Where this differs from Plane, on purpose:
- `activity_time` is each actor's first activity in the stack, as Plane's create_payload meant to
  do (it tested the literal key "actor_id", so it always kept the last one: bug 6).
- An avatar is prefixed with the origin only when it is a path; Plane also prefixed absolute
  avatar URLs and the string "None" of a user without one.
- The text part unescapes entities after stripping tags (Plane's left `&amp;` in it).
"""

from __future__ import annotations

import contextlib
import html
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from shared import plane_templates
from shared.mail.message import header_text, plain_text
from shared.settings import Settings

TEMPLATE = "emails/notifications/issue-updates.html"
SUMMARY = "Updates were made to the issue by"  # Plane's wording


@dataclass(frozen=True)
class Person:
    email: str | None
    first_name: str
    last_name: str
    display_name: str
    avatar_url: str  # as Plane's User.avatar_url: asset path, the `avatar` field, or ""


@dataclass(frozen=True)
class IssueInfo:
    id: uuid.UUID
    name: str
    sequence_id: int
    project_id: uuid.UUID
    project_identifier: str
    project_name: str
    workspace_slug: str


@dataclass(frozen=True)
class LogEntry:
    id: uuid.UUID
    actor_id: uuid.UUID
    data: Mapping[str, Any] | None


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str


def subject_of(issue: IssueInfo) -> str:
    return f"{issue.project_identifier}-{issue.sequence_id} {header_text(issue.name)}"


def _parse_time(value: object) -> datetime | None:
    if not value:
        return None
    text = str(value).strip().replace("Z", "+00:00").replace(" ", "T", 1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def stack_changes(entries: Sequence[LogEntry]) -> dict[uuid.UUID, dict[str, Any]]:
    """Plane's create_payload: per actor and field, de-duplicated str() old and new values (Plane's
    str(None) "None" included), plus the actor's first activity_time (entries in time order)."""
    data: dict[uuid.UUID, dict[str, Any]] = {}
    for entry in entries:
        activity = (entry.data or {}).get("issue_activity")
        if not activity:
            continue
        changes = data.setdefault(entry.actor_id, {})
        field = changes.setdefault(str(activity.get("field")), {})
        for side in ("old_value", "new_value"):
            value = str(activity.get(side))
            values = field.setdefault(side, [])
            if value and value not in values:
                values.append(value)
        if "activity_time" not in changes:
            changes["activity_time"] = _parse_time(activity.get("activity_time"))
    return data


def _with_origin(origin: str, path: str) -> str:
    if not path or path == "None":
        return ""
    return path if re.match(r"^[a-z][a-z0-9+.-]*://", path, re.IGNORECASE) else f"{origin}{path}"


def _mentions(values: Sequence[str] | None, people: Mapping[uuid.UUID, Person]) -> list[str] | None:
    """Plane's process_mention: each <mention-component> becomes @display_name (parsed as HTML,
    by lexbor, as Plane parses it with BeautifulSoup). A mention of someone unknown stays as it is
    (Plane's User.objects.get raised and lost the whole mail)."""
    if values is None:
        return None
    return [_replace_mentions(value, people) for value in values]


def _replace_mentions(value: str, people: Mapping[uuid.UUID, Person]) -> str:
    if "mention-component" not in value.lower():
        return value  # the common case, without building a DOM
    tree = LexborHTMLParser(value)
    for node in tree.css("mention-component"):
        try:
            person = people.get(uuid.UUID((node.attributes.get("entity_identifier") or "").strip()))
        except ValueError:
            person = None
        if person is not None:
            node.replace_with(f"@{person.display_name}")
    return tree.body.inner_html if tree.body is not None else value


def mentioned_ids(entries: Sequence[LogEntry]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for entry in entries:
        activity = (entry.data or {}).get("issue_activity") or {}
        if str(activity.get("field")) != "mention":
            continue
        for side in ("old_value", "new_value"):
            html = str(activity.get(side))
            if "mention-component" not in html.lower():
                continue
            for node in LexborHTMLParser(html).css("mention-component"):
                with contextlib.suppress(ValueError):
                    found.add(uuid.UUID((node.attributes.get("entity_identifier") or "").strip()))
    return found


def context_of(
    issue: IssueInfo,
    receiver: Person,
    entries: Sequence[LogEntry],
    people: Mapping[uuid.UUID, Person],
    origin: str,
) -> dict[str, Any]:
    """Plane's template context (§5.3), `origin` being the issue's stored origin or WEB_URL."""
    identifier = f"{issue.project_identifier}-{issue.sequence_id}"
    project_url = f"{origin}/{issue.workspace_slug}/projects/{issue.project_id}/issues/"
    issue_url = f"{project_url}{issue.id}"
    template_data: list[dict[str, Any]] = []
    comments: list[dict[str, Any]] = []
    actors: list[uuid.UUID] = []
    for actor_id, changes in stack_changes(entries).items():
        actor = people.get(actor_id) or Person(None, "", "", "", "")
        detail = {
            "avatar_url": _with_origin(origin, actor.avatar_url),
            "first_name": actor.first_name,
            "last_name": actor.last_name,
        }
        actors.append(actor_id)
        comment = changes.pop("comment", None)
        mention = changes.pop("mention", None)
        if comment:
            comments.append({"actor_comments": comment, "actor_detail": detail})
        if mention:
            mention = {side: _mentions(mention.get(side), people) for side in ("new_value", "old_value")}
            comments.append({"actor_comments": mention, "actor_detail": detail})
        at: datetime | None = changes.pop("activity_time", None)
        if changes:
            template_data.append(
                {
                    "actor_detail": detail,
                    "changes": changes,
                    "issue_details": {"name": issue.name, "identifier": identifier},
                    "activity_time": at.strftime("%H:%M %p") if at else "",  # Plane's format
                }
            )
    return {
        "data": template_data,
        "summary": SUMMARY,
        "actors_involved": len(set(actors)),
        "issue": {"issue_identifier": identifier, "name": issue.name, "issue_url": issue_url},
        "receiver": {"email": receiver.email},
        "issue_url": issue_url,
        "project_url": project_url,
        "workspace": issue.workspace_slug,
        "project": issue.project_name,
        "user_preference": f"{origin}/{issue.workspace_slug}/settings/account/notifications/",
        "comments": comments,
        "entity_type": "issue",
    }


def _builtin_html(context: Mapping[str, Any]) -> str:
    """The same content without Plane's template: who changed what, comments, the links."""
    e = html.escape
    issue = context["issue"]
    parts = [
        f"<p><b>{e(issue['issue_identifier'])} updates</b></p>",
        f'<p>{e(context["workspace"])}/<a href="{e(context["project_url"])}">{e(context["project"])}</a>/'
        f'<a href="{e(context["issue_url"])}">{e(issue["issue_identifier"])}</a>: {e(issue["name"])}</p>',
    ]
    for update in context["data"]:
        who = update["actor_detail"]
        parts.append(f"<p>{e(who['first_name'])} {e(who['last_name'])} {e(update['activity_time'])}</p><ul>")
        for field, values in update["changes"].items():
            old = ", ".join(values.get("old_value", []))
            new = ", ".join(values.get("new_value", []))
            parts.append(f"<li>{e(field)}: {e(old)} &rarr; {e(new)}</li>")
        parts.append("</ul>")
    for comment in context["comments"]:
        who = comment["actor_detail"]
        parts.append(f"<p>{e(who['first_name'])} {e(who['last_name'])}:</p>")
        # Comment HTML is Plane's stored, sanitised comment_html, shown as Plane's template does (|safe).
        parts.extend(f"<div>{value}</div>" for value in comment["actor_comments"].get("new_value") or [])
    parts.append(f'<p><a href="{e(context["issue_url"])}">View issue</a></p>')
    email = e(context["receiver"]["email"] or "")
    parts.append(
        f"<p>This email was sent to {email}. "
        f'<a href="{e(context["user_preference"])}">Manage your email preferences</a>.</p>'
    )
    return "<html><body>" + "\n".join(parts) + "</body></html>"


def build(
    settings: Settings,
    issue: IssueInfo,
    receiver: Person,
    entries: Sequence[LogEntry],
    people: Mapping[uuid.UUID, Person],
    origin: str,
) -> Mail:
    context = context_of(issue, receiver, entries, people, origin.rstrip("/"))
    body = plane_templates.render(settings, TEMPLATE, context) or _builtin_html(context)
    return Mail(to=receiver.email or "", subject=subject_of(issue), text=plain_text(body), html=body)
