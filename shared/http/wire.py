"""HTTP/1.1 on one asyncio connection: the request written, the response head parsed, the body
read in its framing, at most a cap of it.

Parsing is as lenient as http.client's (which the thread-per-request client reads through), so a
receiver's answer means the same to both clients: header bytes are read as latin-1, a NUL or any
other byte in a value is kept (webhook_logs stores it escaped), lines may end in LF alone,
obs-fold continues a value, 1xx answers before the final one are skipped. Bounds: a head of at
most MAX_HEAD bytes and MAX_HEADERS fields (http.client's 100), a body buffered at most
`BUFFER_HIGH` ahead of the reader (the socket is paused beyond it), never more than the caller's
cap read. Framing follows RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; chunked when it is
the last transfer coding; Content-Length (differing values are an error, not a guess); otherwise
until the peer closes, and that connection is never reused.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from urllib3 import HTTPHeaderDict

from shared.http.errors import ProtocolError

MAX_HEAD = 1024 * 1024
MAX_HEADERS = 100
BUFFER_HIGH = 256 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ILLEGAL_VALUE = re.compile(r"[\r\n\x00]")
_GOOD_NAMES: set[str] = set()  # header names already found to be tokens
_FRAMING_FIELDS = frozenset({"transfer-encoding", "content-length", "connection"})
_NO_BODY_METHODS = frozenset({"HEAD"})
_BODY_METHODS = frozenset({"PATCH", "POST", "PUT"})  # Content-Length: 0 without a body (http.client)


class Connection(asyncio.Protocol):
    """Received bytes in a buffer that the reader consumes; the socket pauses while it is full."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False  # the peer closed or the connection was lost
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    # --- asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > BUFFER_HIGH and not self._paused and self.transport is not None:
            self.transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- the reader's side
    async def fill(self) -> bool:
        """Wait until more bytes arrived; False when the peer closed and no more will come."""
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        if self.closed:
            return False
        size = len(self.buffer)
        while len(self.buffer) == size and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return len(self.buffer) > size

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self._paused and len(self.buffer) <= BUFFER_HIGH // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    @property
    def reusable(self) -> bool:
        """Idle and still open: nothing unread, the peer has not closed."""
        return (
            not self.closed
            and not self.buffer
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()  # unknown state: never drained, never reused


def encode_request(
    method: str, request_target: str, headers: list[tuple[str, str]], body: bytes | None
) -> bytes:
    """The request's bytes; ValueError for a header name or value that would break framing."""
    lines = [f"{method} {request_target} HTTP/1.1"]
    for name, value in headers:
        if name not in _GOOD_NAMES:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"invalid HTTP header name {name!r}")
            if len(_GOOD_NAMES) < 1024:
                _GOOD_NAMES.add(name)
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in _BODY_METHODS:
        lines.append("Content-Length: 0")
    text = "\r\n".join(lines)
    # One scan of the whole head instead of one per value: a CR, LF or NUL beyond the separators
    # is in a value (the names are tokens, the request line was built from checked parts).
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1 or "\x00" in text:
        bad = next((name for name, value in headers if _ILLEGAL_VALUE.search(value)), "request line")
        raise ValueError(f"invalid value for HTTP header {bad!r}")
    try:
        head = (text + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"HTTP header not encodable as latin-1: {exc}") from exc
    return head + bytes(body) if body else head


@dataclass(frozen=True)
class Head:
    version: str
    status: int
    reason: str
    headers: HTTPHeaderDict
    # The values of the fields that frame the body, as lists (read while parsing: cheaper than
    # asking the HTTPHeaderDict), by lower-case name.
    framing: dict[str, list[str]]


async def read_head(conn: Connection) -> Head:
    """The final response's head (1xx interim answers skipped, except 101)."""
    while True:
        head = await _one_head(conn)
        if not 100 <= head.status < 200 or head.status == 101:
            return head


async def _one_head(conn: Connection) -> Head:
    searched = 0
    while True:
        match = _HEAD_END.search(conn.buffer, max(0, searched - 3))
        if match is not None:
            break
        if len(conn.buffer) > MAX_HEAD:
            raise ProtocolError(f"response head longer than {MAX_HEAD} bytes")
        searched = len(conn.buffer)
        if not await conn.fill():
            what = "closed the connection" if not conn.buffer else "closed in the middle of the head"
            raise ProtocolError(f"HTTP exchange failed: the peer {what} before answering")
    raw = conn.take(match.end())
    if len(raw) > MAX_HEAD:
        raise ProtocolError(f"response head longer than {MAX_HEAD} bytes")
    lines = _LINE_END.split(raw.decode("latin-1"))
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not re.fullmatch(r"\d{3}", parts[1]):
        raise ProtocolError(f"bad HTTP status line {lines[0][:100]!r}")
    headers = HTTPHeaderDict()
    fields: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and fields:  # obs-fold: the previous value goes on
            fields[-1][1] += " " + line.strip(" \t")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            continue  # not a field: ignored, as http.client's parser does
        fields.append([name, value.strip(" \t")])
        if len(fields) > MAX_HEADERS:
            raise ProtocolError(f"more than {MAX_HEADERS} response headers")
    framing: dict[str, list[str]] = {}
    for name, value in fields:
        headers.add(name, value)
        lower = name.lower()
        if lower in _FRAMING_FIELDS:
            framing.setdefault(lower, []).append(value)
    return Head(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers, framing)


@dataclass(frozen=True)
class Framing:
    length: int | None  # None: chunked or until close
    chunked: bool = False
    until_close: bool = False

    @property
    def reusable(self) -> bool:
        return not self.until_close


NO_BODY = Framing(length=0)


def framing_of(head: Head, method: str) -> Framing:
    if method in _NO_BODY_METHODS or 100 <= head.status < 200 or head.status in (204, 304):
        return NO_BODY
    codings = [c.strip().lower() for v in head.framing.get("transfer-encoding", ()) for c in v.split(",")]
    if codings:
        if codings[-1] == "chunked":
            return Framing(None, chunked=True)
        return Framing(None, until_close=True)
    lengths = {v.strip() for value in head.framing.get("content-length", ()) for v in value.split(",")}
    if not lengths:
        return Framing(None, until_close=True)
    if len(lengths) > 1:
        raise ProtocolError(f"Content-Length has differing values {sorted(lengths)}")
    value = lengths.pop()
    if not value.isdigit():
        raise ProtocolError(f"Content-Length {value[:40]!r} is not a length")
    return Framing(int(value))


def keeps_alive(head: Head, framing: Framing) -> bool:
    """Whether the connection may serve another request once this body is read in full."""
    tokens = {t.strip().lower() for v in head.framing.get("connection", ()) for t in v.split(",")}
    if head.status == 101 or "close" in tokens or not framing.reusable:
        return False
    return head.version == "HTTP/1.1" or "keep-alive" in tokens


async def read_body(conn: Connection, framing: Framing, cap: int) -> tuple[bytearray, bool, bool]:
    """At most `cap + 1` body bytes: (body, more than cap came, the body was read to its end)."""
    limit = cap + 1
    if framing.chunked:
        return await _read_chunked(conn, limit)
    out = bytearray()
    want = limit if framing.length is None else min(limit, framing.length)
    while len(out) < want:
        if not conn.buffer and not await conn.fill():
            if framing.until_close:
                return out, False, True
            raise ProtocolError(f"the peer closed after {len(out)} of {framing.length} body bytes")
        out += conn.take(want - len(out))
    complete = framing.length is not None and len(out) == framing.length
    return out, len(out) > cap, complete


async def _read_chunked(conn: Connection, limit: int) -> tuple[bytearray, bool, bool]:
    out = bytearray()
    while len(out) < limit:
        line = await _read_line(conn)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while await _read_line(conn):  # trailer fields, up to the empty line
                pass
            return out, False, True
        take = min(size, limit - len(out))
        while take:
            if not conn.buffer and not await conn.fill():
                raise ProtocolError("the peer closed in the middle of a chunk")
            piece = conn.take(take)
            out += piece
            take -= len(piece)
            size -= len(piece)
        if size:  # the cap fell inside this chunk
            break
        if await _read_line(conn):
            raise ProtocolError("chunk not followed by CRLF")
    return out, len(out) >= limit, False


async def _read_line(conn: Connection, max_len: int = 64 * 1024) -> bytes:
    while True:
        end = conn.buffer.find(b"\n")
        if end >= 0:
            return conn.take(end + 1).rstrip(b"\r\n")
        if len(conn.buffer) > max_len:
            raise ProtocolError("chunk line too long")
        if not await conn.fill():
            raise ProtocolError("the peer closed in the middle of the chunked body")
