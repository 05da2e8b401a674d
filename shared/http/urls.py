"""Parse an outbound URL once, strictly, into the exact pieces the client will use.

SSRF bypasses live in the gap between the parser that validates and the one that connects
(`http://a\\@127.0.0.1/`, zone ids, numeric hosts). Here one parse yields the host we vet, the
host we connect to and the request line we send, and anything ambiguous is refused instead of
interpreted: control characters, whitespace, backslashes, `%` in the host, empty hosts,
non-http(s) schemes, ports outside the caller's list.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from shared.http.addresses import IPAddress, ip_literal
from shared.http.errors import UnsafeUrl

MAX_URL_LENGTH = 8192
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True)
class Target:
    """A validated URL: where to connect (after vetting) and what to send."""

    scheme: str
    host: str
    port: int
    request_target: str
    username: str | None = None
    password: str | None = None
    ip: IPAddress | None = None

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def url(self) -> str:
        """The URL without userinfo, safe to log or store."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if _DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.request_target}"

    def basic_auth(self) -> str | None:
        """`Authorization` value for `user:pass@` URLs; pinning must not drop it (Plane #9163)."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _ascii(part: str) -> str:
    """Percent-encode non-ASCII characters (UTF-8) and leave everything else as written."""
    return "".join(c if c.isascii() else quote(c, safe="") for c in part)


def _to_ascii(host: str) -> str:
    """IDNA ToASCII (Python's `idna` codec: nameprep's NFKC and the ideographic full stops), done
    BEFORE the literal check: fullwidth digits, or U+3002 for the dots, spell 127.0.0.1 too, and
    must be judged as that address, not resolved as a name."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UnsafeUrl(f"host {host!r} is not a valid IDNA name") from exc


def _checked_name(host: str) -> str:
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise UnsafeUrl(f"host {host!r} is not a valid DNS name")
    return host.lower()


def parse_target(
    url: str, *, allowed_ports: Collection[int] | None = None, require_https: bool = False
) -> Target:
    """Validate the syntax of `url`; addresses are checked separately (see `vetting`)."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"URL longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN_CHARS.search(url):
        raise UnsafeUrl("URL contains whitespace, control characters or a backslash")
    try:
        parts = urlsplit(url)
        raw_host = parts.hostname or ""
        explicit_port = parts.port
    except ValueError as exc:  # bad brackets, non-numeric or out-of-range port
        raise UnsafeUrl(f"malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    allowed_schemes = ("https",) if require_https else ("http", "https")
    if scheme not in allowed_schemes:
        raise UnsafeUrl(f"scheme {scheme or '(none)'!r} not allowed; use {' or '.join(allowed_schemes)}")
    if not raw_host:
        raise UnsafeUrl("URL has no host")
    if "%" in raw_host:
        raise UnsafeUrl("percent-encoded hosts and IPv6 zone ids are not allowed")
    port = _DEFAULT_PORTS[scheme] if explicit_port is None else explicit_port
    if port == 0:
        raise UnsafeUrl("port 0 is not a destination")
    if allowed_ports is not None and port not in allowed_ports:
        raise UnsafeUrl(f"port {port} not allowed")
    bracketed = "[" in parts.netloc
    ascii_host = _to_ascii(raw_host)
    ip = ip_literal(ascii_host)
    if bracketed and (ip is None or ip.version != 6):
        raise UnsafeUrl(f"bracketed host {raw_host!r} is not an IPv6 address")
    host = str(ip) if ip is not None else _checked_name(ascii_host)
    path = _ascii(parts.path) or "/"
    if not path.startswith("/"):
        raise UnsafeUrl("URL path must be absolute")
    request_target = path + (f"?{_ascii(parts.query)}" if parts.query else "")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Target(scheme, host, port, request_target, username, password, ip)
