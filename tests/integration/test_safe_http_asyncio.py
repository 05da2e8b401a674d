"""The asyncio safe client (`AsyncSafeHttpClient`, its own HTTP/1.1 in `shared.http.wire`) held
to what the thread-per-request client does, over real loopback sockets.

R7's whole address table is refused without a connection, as `SafeHttpClient` refuses it. The
answers a receiver can give on the wire (framings, 1xx, odd bytes in headers, conflicting
lengths, a peer that closes early) mean the same to both clients. Pool rules: one connection
serves successive requests, a truncated or `Connection: close` answer is never reused, at most
`max_connections_per_endpoint` sockets per endpoint, a peer's idle close is noticed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from shared.http import Allowlist, BlockedAddress, HttpError, ProtocolError, SafeHttpClient, UnsafeUrl
from shared.http.aio import LoopSafeHttpClient
from tests.integration.http_servers import CountingListener, HttpServer, RawServer, read_request_head, running
from tests.unit.test_safe_http_addresses import R7_TARGETS, fake_resolver

LOOPBACK = Allowlist.parse("127.0.0.1/32")
Client = SafeHttpClient | LoopSafeHttpClient


@pytest.fixture
def listeners() -> Iterator[list[CountingListener]]:
    v4 = CountingListener("127.0.0.1")
    found = [v4]
    with contextlib.suppress(OSError):
        found.append(CountingListener("::1", v4.port))
    yield found
    for listener in found:
        listener.close()


@pytest.mark.parametrize("host", R7_TARGETS)
def test_r7_target_is_rejected_without_a_connection(host: str, listeners: list[CountingListener]) -> None:
    with LoopSafeHttpClient(resolver=fake_resolver) as client, pytest.raises(BlockedAddress) as info:
        client.request("GET", f"http://{host}:{listeners[0].port}/", deadline_s=2)
    assert info.value.retryable is False and isinstance(info.value, UnsafeUrl)
    assert [listener.accepted for listener in listeners] == [0] * len(listeners)


@pytest.fixture(params=[SafeHttpClient, LoopSafeHttpClient], ids=["urllib3", "asyncio"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    with request.param(LOOPBACK, max_connections_per_endpoint=2) as c:
        yield c


def answer(
    raw: bytes, then: Callable[[socket.socket], None] | None = None
) -> Callable[[socket.socket], None]:
    """A raw server's behaviour: read the request head, send `raw`, then `then` or close."""

    def serve(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(raw)
        if then is not None:
            then(conn)

    return serve


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nhel\r\n2\r\nlo\r\n0\r\nT:1\r\n\r\n",
            b"hello",
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", b"hello"),  # until the peer closes
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", b""),
        (b"HTTP/1.0 200 OK\nContent-Length: 2\n\nok", b"ok"),  # LF alone ends lines
    ],
    ids=["length", "chunked", "until-close", "100-continue", "204", "lf-only"],
)
def test_framings_read_the_same_body(client: Client, raw: bytes, body: bytes) -> None:
    server = RawServer(answer(raw))
    with running(server):
        response = client.request("GET", server.url(), deadline_s=3)
    assert response.status in (200, 204) and response.body == body and not response.truncated


def test_odd_header_bytes_are_kept_as_latin_1(client: Client) -> None:
    raw = b"HTTP/1.1 500 Oops\r\nX-Odd: a\x00\xff\xfe\r\nX-Fold: one\r\n two\r\nContent-Length: 1\r\n\r\n\x00"
    server = RawServer(answer(raw))
    with running(server):
        response = client.request("POST", server.url(), body=b"{}", deadline_s=3)
    assert response.status == 500 and response.body == b"\x00"
    assert response.headers["X-Odd"] == "a\x00\xff\xfe"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"",
    ],
    ids=["conflicting-lengths", "not-http", "short-body", "bad-chunk", "closed-at-once"],
)
def test_broken_answers_are_protocol_errors(raw: bytes) -> None:
    """Retryable, like the urllib3 client's errors for them (the same class where both detect it)."""
    server = RawServer(answer(raw))
    with running(server), LoopSafeHttpClient(LOOPBACK) as client, pytest.raises(ProtocolError) as info:
        client.request("GET", server.url(), deadline_s=3)
    assert info.value.retryable


def test_a_kept_alive_connection_serves_the_next_requests_and_close_is_honoured() -> None:
    server = HttpServer()
    with running(server), LoopSafeHttpClient(LOOPBACK) as client:
        for _ in range(5):
            assert client.request("POST", server.url("/a"), body=b"{}").status == 200
        kept = server.accepted
        for _ in range(2):
            client.request("GET", server.url("/b"), headers={"Connection": "close"})
        client.request("GET", server.url("/c"))
    assert kept == 1
    # The first close-request reused the kept connection; neither went back to the pool.
    assert server.accepted == 3


def test_a_truncated_body_drops_its_connection() -> None:
    server = HttpServer(routes={"/big": lambda h: _send_big(h)})
    with running(server), LoopSafeHttpClient(LOOPBACK) as client:
        first = client.request("GET", server.url("/big"), max_response_bytes=10)
        second = client.request("GET", server.url("/small"))
    assert first.truncated and first.body == b"x" * 10
    assert second.body == b"ok" and server.accepted == 2


def _send_big(handler: object) -> None:
    from tests.integration.http_servers import send

    send(handler, 200, b"x" * 100_000)  # type: ignore[arg-type]


def test_a_peer_that_closes_an_idle_connection_is_not_reused() -> None:
    """One answer per connection, then the peer closes: every request must get a fresh one."""
    served = []

    def once(conn: socket.socket) -> None:
        read_request_head(conn)
        served.append(1)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.shutdown(socket.SHUT_RDWR)

    server = RawServer(once)
    with running(server), LoopSafeHttpClient(LOOPBACK) as client:
        statuses = []
        for _ in range(4):
            statuses.append(client.request("GET", server.url(), deadline_s=3).status)
            threading.Event().wait(0.05)  # the close arrives before the next request
    assert statuses == [200] * 4 and server.accepted == 4


def test_at_most_the_per_endpoint_connections_and_the_rest_wait() -> None:
    release = threading.Event()

    def slow(conn: socket.socket) -> None:
        read_request_head(conn)
        release.wait(5)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    server = RawServer(slow)
    with running(server), LoopSafeHttpClient(LOOPBACK, max_connections_per_endpoint=2) as client:
        results: list[int | str] = []

        def one() -> None:
            try:
                results.append(client.request("GET", server.url(), deadline_s=5).status)
            except HttpError as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        threading.Event().wait(0.5)
        accepted_while_stuck = server.accepted
        release.set()
        for t in threads:
            t.join(10)
    assert accepted_while_stuck == 2
    assert results == [200] * 5


def test_invalid_header_values_are_refused_before_sending() -> None:
    listener = CountingListener()
    with running(listener), LoopSafeHttpClient(LOOPBACK) as client:
        for bad in ("a\r\nX-Injected: 1", "a\nb", "a\x00b"):
            with pytest.raises(ValueError):
                client.request("GET", f"http://127.0.0.1:{listener.port}/", headers={"X-Bad": bad})
        with pytest.raises(ValueError):
            client.request("GET", f"http://127.0.0.1:{listener.port}/", headers={"Bad Name": "1"})
    assert listener.accepted == 0
