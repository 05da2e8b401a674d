"""The `data` of one `plane.notifications.v1` event, parsed into what the rules read.

The envelope's schema already checked the top-level fields. What it cannot check is Plane's
JSON *strings*: `issue_activities_created` is parsed here and held to the schema's own
`$defs/activities`, so a string and a plain list are accepted on the same terms. A string that
is not JSON, or activities of the wrong shape, can never succeed: `BadPayload`, a PermanentError,
dead-letters the event (Plane's task died on `json.loads` and lost it silently).

`requested_data` / `current_instance` are tolerated the way Plane's `extract_mentions` tolerates
them: anything unreadable yields no description (so no description mentions), with a log line.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker

from shared.events.envelope import Event
from shared.events.schemas import SCHEMA_DIR
from shared.kafka.handler import PermanentError

log = logging.getLogger(__name__)

EVENT_TYPE = "plane.notifications.v1"

# Plane's task returns at once for these activity types (no notification, no mention, nothing).
SKIPPED_TYPES = frozenset(
    {
        "cycle.activity.created",
        "cycle.activity.deleted",
        "module.activity.created",
        "module.activity.deleted",
        "issue_reaction.activity.created",
        "issue_reaction.activity.deleted",
        "comment_reaction.activity.created",
        "comment_reaction.activity.deleted",
        "issue_vote.activity.created",
        "issue_vote.activity.deleted",
        "issue_draft.activity.created",
        "issue_draft.activity.updated",
        "issue_draft.activity.deleted",
    }
)


class BadPayload(PermanentError):
    """The event's activities cannot be read; retrying cannot help."""


@dataclass(frozen=True, slots=True)
class Activity:
    """One created issue activity, as IssueActivitySerializer wrote it."""

    id: str
    verb: str
    field: str | None
    old_value: Any
    new_value: Any
    old_identifier: str | None
    new_identifier: str | None
    comment: str | None
    issue_comment: uuid.UUID | None
    # The serializer's `actor` (Plane's task read `actor_id`, which it never has: bug 7).
    actor: uuid.UUID | None
    # issue_detail.id, else `issue`: a relation's mirror row names the other issue.
    issue: uuid.UUID | None
    created_at: str


@dataclass(frozen=True, slots=True)
class Description:
    """What one side (requested / current) says about the issue's description."""

    present: bool  # the side is readable JSON with a `description_html` key
    html: str | None


NO_DESCRIPTION = Description(present=False, html=None)


@dataclass(frozen=True, slots=True)
class NotificationRequest:
    event_id: str
    type: str
    issue_id: uuid.UUID
    project_id: uuid.UUID
    actor_id: uuid.UUID
    subscriber: bool
    activities: tuple[Activity, ...]
    requested: Description
    current: Description

    @property
    def skipped(self) -> bool:
        return self.type in SKIPPED_TYPES


def parse(event: Event) -> NotificationRequest:
    data = event.data
    return NotificationRequest(
        event_id=event.id,
        type=data["type"],
        issue_id=uuid.UUID(data["issue_id"]),
        project_id=uuid.UUID(data["project_id"]),
        actor_id=uuid.UUID(data["actor_id"]),
        subscriber=bool(data["subscriber"]),
        activities=tuple(_activity(a) for a in _activities(data["issue_activities_created"])),
        requested=_description(data["requested_data"], "requested_data"),
        current=_description(data["current_instance"], "current_instance"),
    )


_FORMATS = FormatChecker()


@cache
def _activities_schema() -> dict[str, Any]:
    # The event schema's own definition, so the string form is held to the list form's rules.
    defs = json.loads((SCHEMA_DIR / f"{EVENT_TYPE}.json").read_text())["$defs"]
    return {"$ref": "#/$defs/activities", "$defs": defs}


@cache
def _activities_validator() -> Any:
    formats = {fmt: (lambda value, fmt=fmt: _FORMATS.conforms(value, fmt)) for fmt in _FORMATS.checkers}
    return fastjsonschema.compile(_activities_schema(), formats=formats, use_default=False)


def _activities(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadPayload(f"issue_activities_created is not JSON: {exc}") from None
    try:
        _activities_validator()(value)
    except fastjsonschema.JsonSchemaException:
        # jsonschema says which activity and why (the compiled check only says no).
        checker = Draft202012Validator(_activities_schema(), format_checker=_FORMATS)
        errors = sorted(checker.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
        path = errors[0].absolute_path if errors else []
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        why = errors[0].message if errors else "not a list of activities"
        # A whole activity can be quoted in the message: keep the dead letter's header short.
        raise BadPayload(f"issue_activities_created{where}: {why[:200]}") from None
    return value


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(value) if isinstance(value, str) and value else None


def _activity(raw: dict[str, Any]) -> Activity:
    detail = raw.get("issue_detail")
    issue = detail.get("id") if isinstance(detail, dict) else None
    return Activity(
        id=raw["id"],
        verb=raw["verb"],
        field=raw["field"],
        old_value=raw["old_value"],
        new_value=raw["new_value"],
        old_identifier=raw["old_identifier"],
        new_identifier=raw["new_identifier"],
        comment=raw["comment"],
        issue_comment=_uuid(raw["issue_comment"]),
        actor=_uuid(raw.get("actor") or raw.get("actor_id")),
        issue=_uuid(issue or raw.get("issue")),
        created_at=raw["created_at"],
    )


def _description(value: Any, name: str) -> Description:
    """Plane: json.loads(...).get("description_html"), every failure meaning "no mentions"."""
    if value is None:
        return NO_DESCRIPTION
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            log.info("%s is not JSON: no description mentions read from it", name)
            return NO_DESCRIPTION
    if not isinstance(value, dict) or "description_html" not in value:
        return NO_DESCRIPTION
    html = value["description_html"]
    if not isinstance(html, str):
        if html is not None:
            log.info("%s.description_html is a %s, not text: no mentions", name, type(html).__name__)
        return Description(present=True, html=None)
    return Description(present=True, html=html)
