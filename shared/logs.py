"""JSON logging with the current event or job on every line, and secrets redacted.

The runtime binds context (`event_id`, `topic`, `partition`, `offset`, `consumer`, or `job`) with
`log_context(...)`; every record logged inside that block carries those fields.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

REDACTED = "[redacted]"

# scheme://user:password@... and a password= query parameter (libpq accepts one). The password is
# taken to run to the last "@": a password written with a raw "@" is hidden whole, and an "@" in
# the query only hides more than needed.
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)(?P<password>[^\s]*)(?P<at>@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#\s]*)", re.IGNORECASE)


def redact_url(value: str) -> str:
    """`value` with the password of its userinfo (and any `password=` parameter) replaced by
    REDACTED; anything that is not such a URL comes back unchanged."""
    head, at, tail = value.rpartition("@") if _URL_PASSWORD.match(value) else ("", "", value)
    match = _URL_PASSWORD.match(head + at)
    if match and match["password"]:
        head = match["head"] + REDACTED
    return head + at + _QUERY_PASSWORD.sub(lambda m: m["head"] + REDACTED, tail)


def url_passwords(value: str) -> tuple[str, ...]:
    """The passwords inside a URL (as written and percent-decoded), for redaction elsewhere."""
    match = _URL_PASSWORD.match(value.rpartition("@")[0] + "@")
    found = [match["password"]] if match else []
    found += [m["password"] for m in _QUERY_PASSWORD.finditer(value)]
    return tuple(dict.fromkeys(p for raw in found if raw for p in (raw, unquote(raw))))


_URL_PASSWORD_IN_TEXT = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^\s]+@")


def redact_url_passwords(text: str) -> str:
    """Free text with the password of every `scheme://user:password@` in it replaced by REDACTED
    (to the last "@" of the word: more is hidden rather than less)."""
    text = _URL_PASSWORD_IN_TEXT.sub(lambda m: m["head"] + REDACTED + "@", text)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + REDACTED, text)


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret (at least 4 characters; longest first) replaced by REDACTED."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is redacted whole.
        self._secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, default=str))

    def redact(self, line: str) -> str:
        return redact(line, self._secrets)


class TextFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={v}" for k, v in _context.get().items())
        line = f"{record.levelname.lower():7} {record.getMessage()}"
        if context:
            line += f"  [{context}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


def configure(level: str = "INFO", fmt: str = "json", secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter(secrets) if fmt == "text" else JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # librdkafka and arroyo are chatty at INFO about every rebalance step.
    logging.getLogger("arroyo").setLevel(max(logging.WARNING, root.level))
