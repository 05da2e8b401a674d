"""The CloudEvents 1.0 envelope (structured JSON mode) and its validation on consume.

`parse_event` turns raw bytes into an `Event` or raises `InvalidEvent` with a `kind` that says
what was wrong. Those are permanent failures: the runtime dead-letters them, never retries them.
A valid event of a type the consumer does not take (`accept`) is one too: no handler has it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fastjsonschema

from shared.events.schemas import fast_validator_for, validator_for

log = logging.getLogger(__name__)

SPEC_VERSION = "1.0"
DEFAULT_SOURCE = "/plane-workers"


class InvalidEvent(Exception):
    """An event that can never be processed as it stands."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # oversize | malformed_json | invalid_envelope | unknown_type | schema_violation


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    source: str
    time: str
    data: dict[str, Any]
    subject: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }
        if self.subject is not None:
            envelope["subject"] = self.subject
        return {**envelope, **self.extensions}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def new_event(
    type: str,
    data: dict[str, Any],
    *,
    source: str = DEFAULT_SOURCE,
    event_id: str | None = None,
    subject: str | None = None,
) -> Event:
    """Build a valid event; raises InvalidEvent if `data` does not match the type's schema."""
    event = Event(
        id=event_id or str(uuid.uuid4()),
        type=type,
        source=source,
        time=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        data=data,
        subject=subject,
    )
    validate(event.to_dict())
    return event


_ENVELOPE_FIELDS = {"specversion", "id", "type", "source", "time", "datacontenttype", "data"}


def validate(envelope: dict[str, Any]) -> None:
    _check("cloudevent", envelope, "invalid_envelope")
    try:
        _check(envelope["type"], envelope["data"], "schema_violation")
    except KeyError:
        raise InvalidEvent("unknown_type", f"unknown event type {envelope['type']!r}") from None


def _check(schema: str, instance: Any, kind: str) -> None:
    """The compiled validator decides quickly; jsonschema, the reference, has the last word on a
    rejection and describes it."""
    try:
        fast_validator_for(schema)(instance)
        return
    except fastjsonschema.JsonSchemaException as exc:
        fast_message = str(exc)
    errors = sorted(validator_for(schema).iter_errors(instance), key=str)
    if errors:
        raise InvalidEvent(kind, _describe(errors[0]))
    log.warning("schema %s: fastjsonschema rejected what jsonschema accepts: %s", schema, fast_message)


def parse_event(raw: bytes, *, max_bytes: int, accept: Collection[str] | None = None) -> Event:
    """`accept`: the event types the caller handles (a consumer's `event_types`); None takes any."""
    if len(raw) > max_bytes:
        raise InvalidEvent("oversize", f"event is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        envelope = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent("malformed_json", f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise InvalidEvent("invalid_envelope", "the envelope must be a JSON object")
    validate(envelope)
    if accept is not None and envelope["type"] not in accept:
        raise InvalidEvent("unknown_type", f"takes {', '.join(sorted(accept))}, not {envelope['type']}")
    return Event(
        id=envelope["id"],
        type=envelope["type"],
        source=envelope["source"],
        time=envelope["time"],
        data=envelope["data"],
        subject=envelope.get("subject"),
        extensions={k: v for k, v in envelope.items() if k not in _ENVELOPE_FIELDS | {"subject"}},
    )


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"[:500]
