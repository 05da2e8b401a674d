"""Celery protocol 2, as Plane's API publishes it: what a task message carries, decoded.

Headers name the task (`task`), its id (`id`) and when it is due (`eta`, ISO 8601; `countdown` is
turned into `eta` by the client, but a hand-made message may carry it). The body is
`[args, kwargs, embed]` in kombu's JSON, whose `{"__type__": "uuid"|"datetime"|..., "__value__": ...}`
values kombu's own decoder turns back into Python objects. Anything else is `Malformed`: the bridge
dead-letters it rather than guess.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kombu.utils import json as kombu_json

JSON_CONTENT_TYPES = ("application/json",)


class Malformed(Exception):
    """A message that is not a Celery protocol-2 task in JSON; it can never be bridged."""


@dataclass(frozen=True)
class TaskMessage:
    name: str
    id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    eta: dt.datetime | None  # aware, UTC; None: due now
    retries: int


def task_name(headers: Mapping[str, Any]) -> str | None:
    """The task name without decoding the body (routing needs only this)."""
    name = headers.get("task")
    return name if isinstance(name, str) and name else None


def decode(headers: Mapping[str, Any], body: bytes | str, content_type: str | None) -> TaskMessage:
    name = task_name(headers)
    if name is None:
        raise Malformed("no `task` header: not a Celery protocol-2 message")
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise Malformed(f"{name}: no `id` header")
    if (content_type or "").split(";")[0].strip().lower() not in JSON_CONTENT_TYPES:
        # Pickle and YAML bodies are never decoded here (Plane sends JSON only).
        raise Malformed(f"{name}: content type {content_type!r} is not application/json")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        decoded = kombu_json.loads(text)
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise Malformed(f"{name}: body is not kombu JSON: {exc}") from None
    if not (isinstance(decoded, list) and len(decoded) == 3):
        raise Malformed(f"{name}: body is not [args, kwargs, embed]")
    args, kwargs, _embed = decoded
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise Malformed(f"{name}: args must be a list and kwargs an object")
    return TaskMessage(
        name=name,
        id=task_id,
        args=tuple(args),
        kwargs=kwargs,
        eta=due_time(headers),
        retries=int(headers.get("retries") or 0),
    )


def due_time(headers: Mapping[str, Any], now: dt.datetime | None = None) -> dt.datetime | None:
    """`eta` (naive means UTC, as Celery's clients with a UTC timezone write it), else `countdown`
    seconds from now; None when neither is set. An unreadable one is Malformed."""
    eta = headers.get("eta")
    if eta:
        try:
            when = dt.datetime.fromisoformat(str(eta))
        except ValueError:
            raise Malformed(f"eta {eta!r} is not ISO 8601") from None
        return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    countdown = headers.get("countdown")
    if countdown is not None:
        try:
            seconds = float(countdown)
        except (TypeError, ValueError):
            raise Malformed(f"countdown {countdown!r} is not a number") from None
        return (now or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=seconds)
    return None


def to_json_value(value: Any) -> Any:
    """Plain JSON of a decoded argument: UUIDs as strings (DESIGN: "strings for UUIDs"), datetimes
    in ISO 8601, decimals as strings, bytes as base64, containers recursively."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    raise TypeError(f"cannot carry a {type(value).__name__} in an event")
