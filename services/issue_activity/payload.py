"""Reading an event's fields the way Plane's task and Django's model fields read them.

Plane parses `requested_data`/`current_instance` only in the handlers that use them, so a bad
value in a field a handler ignores is harmless; `Payload` keeps that laziness. Where Plane would
raise (json.loads on garbage, `.get` on a list, Django's UUIDField on "abc"), these helpers raise
`InvalidActivity` with the field named.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from services.issue_activity.result import InvalidActivity


def is_valid_uuid4(value: object) -> bool:
    """Plane's `is_valid_uuid`: parses as a UUID and is version 4.

    Plane calls `uuid.UUID(value)` on whatever it got, so a non-string raises there; here a
    non-string is simply not a valid UUID, which is what every caller then does with it.
    """
    if not isinstance(value, str):
        return False
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


def as_uuid(value: object, what: str) -> uuid.UUID | None:
    """What Django's UUIDField stores for `value` (any version, hex with or without dashes)."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 128:
        return uuid.UUID(int=value)
    raise InvalidActivity(f"{what}: {value!r} is not a UUID")


def text(value: object) -> str | None:
    """What Django's Text/CharField stores: None stays None, anything else becomes `str(value)`."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


def parse_json(raw: object, what: str) -> Any:
    """`json.loads(raw) if raw is not None else None`; an already decoded object is taken as is.

    Plane's API always sends JSON strings, but `current_instance={}` is passed as a dict by some
    call sites and a Kafka producer may embed objects directly.
    """
    if raw is None or isinstance(raw, dict | list):
        return raw
    if isinstance(raw, str | bytes):
        try:
            return json.loads(raw)
        except ValueError as e:
            raise InvalidActivity(f"{what} is not JSON: {e}") from None
    raise InvalidActivity(f"{what} must be a JSON string, got {type(raw).__name__}")


class Payload:
    """`requested_data` and `current_instance` of one event, decoded on first use."""

    def __init__(self, requested_data: object, current_instance: object) -> None:
        self._raw = {"requested_data": requested_data, "current_instance": current_instance}
        self._parsed: dict[str, Any] = {}

    def _get(self, name: str) -> Any:
        if name not in self._parsed:
            self._parsed[name] = parse_json(self._raw[name], name)
        return self._parsed[name]

    def _object(self, name: str, required: bool) -> dict[str, Any] | None:
        value = self._get(name)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            shape = "null" if value is None else type(value).__name__
            raise InvalidActivity(f"{name} must be a JSON object here, got {shape}")
        return value

    def requested(self) -> dict[str, Any]:
        """The decoded object; Plane's `requested_data.get(...)` raises on anything else."""
        value = self._object("requested_data", required=True)
        assert value is not None
        return value

    def current(self) -> dict[str, Any]:
        value = self._object("current_instance", required=True)
        assert value is not None
        return value

    def requested_or_none(self) -> dict[str, Any] | None:
        """For handlers that test `if requested_data and ...` before using it."""
        return self._object("requested_data", required=False)

    def current_or_none(self) -> dict[str, Any] | None:
        return self._object("current_instance", required=False)


def id_list(data: dict[str, Any] | None, primary: str, fallback: str) -> set[str]:
    """Plane's `extract_ids`: the ids under `primary`, else under `fallback`, as strings.

    Plane iterates whatever is there, so a string would be taken character by character (and then
    every current id reported as removed) and null raises; both are refused here.
    """
    if not data:
        return set()
    key = primary if primary in data else fallback
    values = data.get(key, [])
    if not isinstance(values, list):
        raise InvalidActivity(f"{key} must be a list of ids, got {type(values).__name__}")
    return {str(v) for v in values}
