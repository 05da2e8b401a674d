"""What of one API request may be stored, and in which form PostgreSQL takes it.

Plane's middleware hands its task the raw `X-Api-Key` as `token_identifier` and `str(request.headers)`
(the key again, plus any Authorization or Cookie header): Plane stores both as they are (bug 13).
Here the key becomes `sha256:<hex>` (an operator can still match it to `api_tokens`:
`'sha256:' || encode(sha256(token::bytea), 'hex')`), sensitive headers and query parameters are
replaced by REDACTED, and a last pass removes the raw key wherever else it occurs (a body echoing
it, a query string), so no column of the row can hold it.

PostgreSQL `text` refuses NUL (0x00) and psycopg cannot encode lone UTF-16 surrogates (JSON
`"\\ud800"` decodes to one): NULs are dropped, surrogates become U+FFFD. varchar columns are cut
to their length (Plane's create() would fail on a long path and lose the row).
"""

from __future__ import annotations

import ast
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote_plus

REDACTED = "[redacted]"
UNPARSEABLE_HEADERS = "[headers not stored: not a header mapping]"
# Words whose presence in a header or query parameter name makes its value a credential.
_SENSITIVE_WORDS = (
    "authorization",
    "cookie",
    "api-key",
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "session",
    "csrf",
    "signature",
    "credential",
)
_SENSITIVE_NAMES = frozenset({"key", "auth", "sig", "jwt"})
_SURROGATES = re.compile("[\ud800-\udfff]")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
# Parsing Plane's header repr is bounded: literal_eval of a huge or deeply nested text costs.
_MAX_HEADERS_PARSE = 256 * 1024


HASHED = "sha256:"


def token_identifier(raw_key: str) -> str:
    """What `api_activity_logs.token_identifier` holds instead of the key itself (a key the
    bridge already hashed, for_transport, is kept as it is)."""
    if raw_key.startswith(HASHED):
        return raw_key
    return HASHED + hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def for_transport(log_data: Mapping[str, object]) -> dict[str, object]:
    """Plane's log_data as the Celery bridge puts it on Kafka: the key hashed and removed from
    every text field, credential headers and query parameters redacted, so no topic, retry tier
    or DLQ holds a usable API key. The consumer's own scrubbing leaves this unchanged."""
    raw = log_data.get("token_identifier")
    if not isinstance(raw, str) or raw.startswith(HASHED):
        return dict(log_data)
    out: dict[str, object] = {}
    for name, value in log_data.items():
        if name == "token_identifier":
            out[name] = token_identifier(raw)
        elif name == "headers" and isinstance(value, (str, Mapping)):
            out[name] = without(redact_headers(value), (raw,))
        elif name == "query_params" and isinstance(value, str):
            out[name] = without(redact_query(value), (raw,))
        elif isinstance(value, str):
            out[name] = without(value, (raw,))
        else:
            out[name] = value
    return out


def is_sensitive(name: str) -> bool:
    lowered = name.strip().lower().replace("_", "-")
    return lowered in _SENSITIVE_NAMES or any(word in lowered for word in _SENSITIVE_WORDS)


def pg_text(value: str) -> str:
    """`value` as PostgreSQL text accepts it: without NUL, lone surrogates as U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return _SURROGATES.sub("\ufffd", value)


def cap_bytes(value: str, max_bytes: int) -> tuple[str, bool]:
    """At most `max_bytes` UTF-8 bytes of `value` (cut on a character boundary) and a marker
    saying how long it was; True when it was cut."""
    raw = value.encode("utf-8")
    if len(raw) <= max_bytes:
        return value, False
    kept = raw[:max_bytes].decode("utf-8", "ignore")
    return f"{kept}\n[truncated by plane-workers: {len(raw)} bytes in all]", True


def varchar(value: str | None, length: int) -> str | None:
    """PostgreSQL counts varchar(n) in characters, as Python's len() does."""
    return None if value is None else value[:length]


def inet(value: str | None) -> str | None:
    """An address PostgreSQL's inet takes, or None (Plane's create() fails on anything else)."""
    if not value:
        return None
    candidate = value.strip().split("%", 1)[0]  # inet has no IPv6 zone index
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def redact_query(query: str | None) -> str | None:
    """The query string with sensitive parameters' values replaced; other parts kept verbatim."""
    if not query:
        return query
    parts = []
    for part in query.split("&"):
        name, sep, _value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if sep and is_sensitive(unquote_plus(name)) else part)
    return "&".join(parts)


def redact_headers(headers: str | Mapping[str, object] | None) -> str | None:
    """Plane's `str(request.headers)` (a dict repr) with sensitive values replaced, in the same
    form; a JSON object or `Name: value` lines are read too. Anything else is not stored."""
    if headers is None:
        return None
    mapping = headers if isinstance(headers, Mapping) else _parse_mapping(headers)
    if mapping is not None:
        return repr({str(k): (REDACTED if is_sensitive(str(k)) else _as_str(v)) for k, v in mapping.items()})
    assert isinstance(headers, str)
    lines = _parse_lines(headers)
    if lines is None:
        return UNPARSEABLE_HEADERS
    return "\n".join(f"{name}: {REDACTED if is_sensitive(name) else value}" for name, value in lines)


def without(value: str | None, secrets: Iterable[str]) -> str | None:
    """`value` with every occurrence of each secret (and its URL-encoded forms) replaced."""
    if not value:
        return value
    for secret in secrets:
        if not secret:
            continue
        for form in secret_forms(secret):
            if form in value:
                value = value.replace(form, REDACTED)
    return value


def secret_forms(secret: str) -> tuple[str, ...]:
    """How a secret appears in text: as it is and URL-encoded (path and query, form bodies)."""
    return tuple(dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret))))


def _as_str(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _parse_mapping(text: str) -> Mapping[str, object] | None:
    stripped = text.strip()
    if not stripped.startswith("{") or len(stripped) > _MAX_HEADERS_PARSE:
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(stripped)
        except Exception:  # SyntaxError, ValueError, RecursionError, MemoryError...: not a mapping
            continue
        if isinstance(parsed, dict):
            return parsed
    return None


def _parse_lines(text: str) -> list[tuple[str, str]] | None:
    lines = [line for line in text.splitlines() if line.strip()]
    pairs = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not _HEADER_NAME.match(name.strip()):
            return None
        pairs.append((name.strip(), value.strip()))
    return pairs or None
